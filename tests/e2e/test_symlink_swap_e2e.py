"""A local user who can write inside a watch folder races the agent with a symlink swap:
a subfolder and a symlink to a private folder outside the watch trade places with
renameat2(RENAME_EXCHANGE) thousands of times a second while real `photonic agent --once` runs
list, hash, copy and upload. Nothing from outside the watch may reach the server."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from tests.support.daemons import ServerHandle, make_agent, sha256_of
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import content_hashes, library_hashes
from tests.support.swap import SUPPORTED, Swapper

pytestmark = pytest.mark.skipif(not SUPPORTED, reason="renameat2 is Linux only")

ROUNDS = 30
ROUND_BUDGET_S = 45.0
SECRETS = 40


def _attack_setup(watch: Path, secret_dir: Path, tag: str) -> list[tuple[Path, Path]]:
    """A decoy folder inside the watch holding files named like the private ones outside, and
    a symlink inside pointing at the private folder: the pair the attacker keeps swapping."""
    decoy = watch / "album"
    decoy.mkdir(parents=True)
    for i in range(SECRETS):
        (decoy / f"id_rsa_{i}").write_bytes(f"decoy {tag} {i}".encode())
    (watch / "link").symlink_to(secret_dir, target_is_directory=True)
    return [(watch / "album", watch / "link")]


def _touch_decoys(watch: Path, round_: int) -> None:
    """New bytes in every decoy each round, so every scan has them to hash and read again."""
    for folder in (watch / "album", watch / "link"):
        if folder.is_dir() and not folder.is_symlink():
            for path in folder.iterdir():
                path.write_bytes(path.read_bytes().split(b"#")[0] + f"#{round_}".encode())


def _server_hashes(server: ServerHandle) -> set[str]:
    return content_hashes(server)


def test_symlink_swap_race_never_uploads_a_file_from_outside_the_watch(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """Over up to 30 `agent --once` runs racing a RENAME_EXCHANGE loop (a reference watch and
    an ingest watch), no byte of the 0600 files outside the watch is stored by the server:
    no object and no library file holds them. The photos inside still all arrive."""
    secret_dir = tmp_path / "home" / ".ssh"
    secret_dir.mkdir(parents=True)
    secrets = set()
    for i in range(SECRETS):
        data = f"-----BEGIN OPENSSH PRIVATE KEY----- {i} {os.urandom(16).hex()}".encode()
        path = secret_dir / f"id_rsa_{i}"
        path.write_bytes(data)
        path.chmod(0o600)
        secrets.add(hashlib.sha256(data).hexdigest())
    photos, card = tmp_path / "agent" / "photos", tmp_path / "card"
    agent = make_agent(tmp_path / "agent", pki, "laptop", server,
                       watches={"photos": photos, "card": card},
                       extra={"agent": {"watch": [
                           {"path": str(photos), "name": "photos"},
                           {"path": str(card), "name": "card", "mode": "ingest"}]}})
    legit = {f"keep/IMG_{i:04d}.jpg": make_jpeg(photos / "keep" / f"IMG_{i:04d}.jpg", seed=i)
             for i in range(5)}
    pairs = _attack_setup(photos, secret_dir, "photos") + _attack_setup(card, secret_dir, "card")

    deadline = time.monotonic() + ROUND_BUDGET_S
    with Swapper(pairs) as swapper:
        for round_ in range(ROUNDS):
            if time.monotonic() > deadline:
                break
            _touch_decoys(photos, round_)
            _touch_decoys(card, round_)
            agent.once()
            assert not secrets & _server_hashes(server), f"a secret was stored in round {round_}"
    assert swapper.swaps > 1000, "the race did not run"

    agent.once()  # no swapping now: what is inside arrives
    assert not secrets & _server_hashes(server)
    library = library_hashes(server, "laptop", "photos")
    for rel, path in legit.items():
        assert library.get(rel) == sha256_of(path), rel
