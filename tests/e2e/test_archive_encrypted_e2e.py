"""Encrypted backup nodes (the archive issue's off-site privacy), on real daemons over real
mutual TLS: a primary whose backup node is `encrypted: true` sends it sealed objects under
keyed names. On the node's disk no object hashes to a photo's SHA-256 and no file, file name
or catalog row holds a photo's hash, name or library path; the sealed index opens with the
key and names every library path. `photonic restore` from the node onto a wiped primary gives
every photo back byte for byte with the key, refuses with another key and stores nothing; a
flipped byte on the node is caught when its segment is opened, while the node's own scrub
finds it by the ciphertext's SHA-256. A server with an encrypted node and no key does not
start."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.archive import (
    NODE,
    PRIMARY_ID,
    archive_library,
    sealed_index,
    start_archive,
    start_primary,
    unconfirmed_versions,
)
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    make_agent,
    run_cli,
    sha256_of,
    tree_hashes,
    wait_until,
    web_get,
    web_token,
    write_server_config,
)
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki

pytestmark = [pytest.mark.e2e, pytest.mark.local_objects(
    "replication to an encrypted archive node reads and writes local objects")]


@dataclass
class Sealed:
    primary: ServerHandle
    archive: ServerHandle
    agent: AgentHandle
    key: Path
    fingerprint: str


def _new_key(folder: Path) -> str:
    out = run_cli("certs", "archive-key", "--dir", str(folder), check=True).stdout
    assert "Back this file up" in out
    m = re.search(r"fingerprint ([0-9a-f]{16})", out)
    assert m is not None, out
    return m.group(1)


@pytest.fixture
def sealed(tmp_path: Path, pki: TestPki, daemons: list[Daemon]) -> Iterator[Sealed]:
    fingerprint = _new_key(tmp_path / "keys")
    key = tmp_path / "keys" / "archive.key"
    archive = start_archive(tmp_path / "archive", pki)
    daemons.append(archive.daemon)
    primary = start_primary(tmp_path / "primary", pki, archive.endpoint, {"encrypted": True},
                            archive_key=key)
    daemons.append(primary.daemon)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", primary)
    yield Sealed(primary, archive, agent, key, fingerprint)


def _photos(folder: Path, seeds: range) -> None:
    for seed in seeds:
        make_jpeg(folder / ("2024/june" if seed % 2 else "") / f"img_{seed:03d}.jpg", seed=seed)


def _library(primary: ServerHandle) -> dict[str, str]:
    """{library path: sha256} of the primary's library (agent/watch/path)."""
    return {f"laptop/{rel}": sha for rel, sha in
            tree_hashes(primary.storage / "library" / "laptop").items()}


def _all_replicated(s: Sealed, library: dict[str, str]) -> bool:
    if unconfirmed_versions(s.primary) != 0:
        return False
    index = sealed_index(s.archive, s.key)
    return {p for paths in index.values() for p in paths} == set(library)


def _api(server: ServerHandle, path: str) -> Any:
    return web_get(server, path, web_token(server))


def test_an_encrypted_node_holds_only_ciphertext_under_keyed_names(sealed: Sealed) -> None:
    """Six photos and a second version of one reach the node; the key opens its index, which
    names all seven library paths with their hashes. Nothing on the node's disk (objects,
    library names, catalog.db and its WAL, every other file) holds a photo's SHA-256 (hex or
    raw), file name or library path, and every object hashes to its own name. The dashboard's
    /api/v1/replication says the node is encrypted with the key's fingerprint."""
    photos = sealed.agent.watches["photos"]
    _photos(photos, range(6))
    sealed.agent.once()
    (photos / "img_000.jpg").write_bytes((photos / "img_002.jpg").read_bytes()[:-2] + b"\xff\xd9")
    sealed.agent.once()
    library = _library(sealed.primary)
    assert len(library) == 7 and "laptop/photos/img_000.v1.jpg" in library, sorted(library)
    wait_until(lambda: _all_replicated(sealed, library), 90, message="the sealed replication")
    index = sealed_index(sealed.archive, sealed.key)
    assert {sha: set(paths) for sha, paths in index.items()} == {
        sha: {p for p, s in library.items() if s == sha} for sha in set(library.values())}

    hashes = set(library.values())
    secrets = [h.encode() for h in hashes] + [bytes.fromhex(h) for h in hashes]
    names = {p.rsplit("/", 1)[-1] for p in library} | {p.split("/", 1)[1] for p in library}
    secrets += [n.encode() for n in names] + [b"laptop/photos", b"2024/june"]
    files = [p for p in sealed.archive.storage.rglob("*") if p.is_file()]
    assert any(p.name == "catalog.db" for p in files)
    for path in files:
        rel = path.relative_to(sealed.archive.storage).as_posix()
        data = path.read_bytes()
        leaked = [s for s in secrets if s in data or s in rel.encode()]
        assert not leaked, (rel, leaked[:3])
    objects = [p for p in (sealed.archive.storage / "objects").rglob("*") if p.is_file()]
    assert len(objects) >= len(hashes) + 1  # each photo's content and the index
    for obj in objects:
        digest = sha256_of(obj)
        assert digest == obj.name and digest not in hashes

    nodes = _api(sealed.primary, "/api/v1/replication")["nodes"]
    assert [n["name"] for n in nodes] == [NODE]
    node = nodes[0]
    assert node["encrypted"] and node["key_fingerprint"] == sealed.fingerprint
    assert node["key_warning"] == (f"encrypted with {sealed.fingerprint}; without this key "
                                   "that copy cannot be read — back it up")
    assert node["connected"] and node["last_error"] == ""
    assert (node["bytes_pending"], node["versions_pending"]) == (0, 0)
    assert node["objects_confirmed"] == len(hashes)
    status = run_cli("status", "--config", str(sealed.agent.config_path), "--remote",
                     check=True).stdout
    assert (f"backup node {NODE}: encrypted with {sealed.fingerprint}; without this key that "
            "copy cannot be read — back it up") in status


def test_restore_from_an_encrypted_node_needs_the_key_and_catches_a_flipped_byte(
        sealed: Sealed) -> None:
    """A wiped primary: with another key the restore refuses, naming that key, and stores
    nothing; with the right key every photo comes back byte-identical. Then a byte flipped in
    one sealed object on the node: the restore stops that photo at the segment that does not
    authenticate and brings the rest; the node's own scrub finds the object by its SHA-256."""
    _photos(sealed.agent.watches["photos"], range(20, 24))
    assert sealed.agent.once()["files_uploaded"] == 4
    library = _library(sealed.primary)
    wait_until(lambda: _all_replicated(sealed, library), 90, message="the sealed replication")
    sealed.primary.daemon.terminate(20)
    shutil.rmtree(sealed.primary.storage)
    config = str(sealed.primary.config_path)

    good = sealed.key.with_name("good.key")
    os.replace(sealed.key, good)
    other = _new_key(sealed.key.parent)
    refused = run_cli("restore", "--from", NODE, "--all", "--config", config)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"the archive key {other} does not open the sealed index" in refused.stderr
    assert "nothing was restored" in refused.stderr
    assert not sealed.primary.storage.exists()

    os.replace(good, sealed.key)
    done = run_cli("restore", "--from", NODE, "--all", "--config", config, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["fetched"] == 4 and report["paths_recorded"] == 4 and report["ok"]
    assert _library(sealed.primary) == library

    shutil.rmtree(sealed.primary.storage)
    victim = sorted((archive_library(sealed.archive) / "sealed" / "o").rglob("*"))[-1]
    assert victim.is_file()
    cipher_sha = sha256_of(victim)
    os.chmod(victim, 0o644)
    with open(victim, "r+b") as f:
        f.seek(victim.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))
    cut = run_cli("restore", "--from", NODE, "--all", "--config", config, "--json")
    assert cut.returncode == 1, cut.stdout + cut.stderr
    report = json.loads(cut.stdout)
    assert report["fetched"] == 3 and len(report["failed"]) == 1, report
    assert "does not authenticate" in report["failed"][0]["reason"]
    restored = _library(sealed.primary)
    assert len(restored) == 3 and all(library[p] == sha for p, sha in restored.items())

    scrub = run_cli("scrub", "--now", "--config", str(sealed.archive.config_path))
    assert scrub.returncode == 1, scrub.stdout + scrub.stderr
    assert f"UNREPAIRED {cipher_sha}" in scrub.stdout
    assert PRIMARY_ID in scrub.stdout  # the library path it names is the sealed one


def test_a_server_with_an_encrypted_node_and_no_key_does_not_start(
        tmp_path: Path, pki: TestPki) -> None:
    key = tmp_path / "certs" / "archive.key"
    path, _port = write_server_config(tmp_path, pki, extra={
        "security": {"archive_key_path": str(key)},
        "storage": {"backup_nodes": [{"name": NODE, "endpoint": "127.0.0.1:9",
                                      "encrypted": True}]}})
    proc = run_cli("server", "--config", str(path), timeout_s=30)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "security.archive_key_path" in proc.stderr and f"{key}: no such file" in proc.stderr
    assert f"photonic certs archive-key --dir {key.parent}" in proc.stderr


def test_the_scrub_repairs_a_damaged_photo_from_the_encrypted_node(sealed: Sealed) -> None:
    """A byte flipped in a photo on the primary's disk: `photonic scrub --now` quarantines
    it and fetches it back from the encrypted node (found by its keyed name, opened with the
    key, verified by its SHA-256); the library holds the right bytes again."""
    _photos(sealed.agent.watches["photos"], range(30, 33))
    assert sealed.agent.once()["files_uploaded"] == 3
    library = _library(sealed.primary)
    wait_until(lambda: _all_replicated(sealed, library), 90, message="the sealed replication")
    rel, sha = sorted(library.items())[0]
    photo = sealed.primary.storage / "library" / rel
    os.chmod(photo, 0o644)
    with open(photo, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0x01]))
    assert sha256_of(photo) != sha
    scrub = run_cli("scrub", "--now", "--config", str(sealed.primary.config_path), "--json")
    assert scrub.returncode == 0, scrub.stdout + scrub.stderr
    assert f'"{sha}"' in scrub.stdout and NODE in scrub.stdout
    assert sha256_of(sealed.primary.storage / "library" / rel) == sha
