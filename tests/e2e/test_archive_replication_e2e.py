"""Archive nodes (issue 21), against real daemons over real mutual TLS: a primary server with
one backup node (an archive server), and an agent that syncs to the primary. Photos reach the
archive byte-identical under the primary's library paths, versions included; status, the
safety view and photo details count two copies; the lag metric returns to 0; an archive that
is down while photos arrive costs the primary nothing and is caught up later, each byte sent
once; the archive takes no agent uploads."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from photonic import errors
from photonic.agent.client import ServerClient
from photonic.tls import channel_credentials
from tests.support.archive import (
    PRIMARY_ID,
    archive_library,
    replication_metrics,
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
    tree_hashes,
    wait_until,
    web_get,
    web_token,
)
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki, server_identity

pytestmark = [pytest.mark.e2e, pytest.mark.local_objects(
    "replication (storage.backup_nodes) copies local objects")]


def _photos(folder: Path, seeds: range) -> int:
    """Writes one JPEG per seed (some in a subfolder); their total size."""
    total = 0
    for seed in seeds:
        sub = folder / ("2024/june" if seed % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img_{seed:03d}.jpg"
        make_jpeg(path, seed=seed)
        total += path.stat().st_size
    return total


@pytest.fixture
def pair(tmp_path: Path, pki: TestPki, daemons: list[Daemon]
         ) -> Iterator[tuple[ServerHandle, ServerHandle, AgentHandle]]:
    archive = start_archive(tmp_path / "archive", pki)
    daemons.append(archive.daemon)
    primary = start_primary(tmp_path / "primary", pki, archive.endpoint)
    daemons.append(primary.daemon)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", primary)
    yield primary, archive, agent


def _replicated(primary: ServerHandle, archive: ServerHandle) -> bool:
    return (unconfirmed_versions(primary) == 0
            and tree_hashes(archive_library(archive) / "laptop")
            == tree_hashes(primary.storage / "library" / "laptop"))


def test_photos_synced_to_the_primary_reach_the_archive_byte_identical(
        pair: tuple[ServerHandle, ServerHandle, AgentHandle]) -> None:
    """Six photos and then a second version of one: the archive holds the primary's library
    tree (laptop/photos/..., the older version as name.v1.jpg) under library/primary1/, every
    file byte-identical; `photonic status --remote` says 6 of 6 photos in at least 2 copies;
    the shoots and photo details say 2 copies; the lag and backlog metrics go to 0."""
    primary, archive, agent = pair
    photos = agent.watches["photos"]
    _photos(photos, range(6))
    agent.once()
    wait_until(lambda: _replicated(primary, archive), 60, message="replication")
    (photos / "img_000.jpg").write_bytes((photos / "img_002.jpg").read_bytes()[:-2] + b"\xff\xd9")
    agent.once()
    wait_until(lambda: _replicated(primary, archive), 60, message="the new version")
    tree = tree_hashes(archive_library(archive) / "laptop" / "photos")
    assert len(tree) == 7 and "img_000.v1.jpg" in tree, sorted(tree)
    metrics = wait_until(lambda: (m := replication_metrics(primary)).lag_s == 0
                         and m.bytes_pending == 0 and m, 30, message="lag 0")
    assert metrics.confirmed == 7
    proc = run_cli("status", "--config", str(agent.config_path), "--json", "--remote",
                   check=True)
    remote = json.loads(proc.stdout)["remote"]
    assert (remote["photos"], remote["photos_safe"], remote["min_copies"]) == (6, 6, 2)
    text = run_cli("status", "--config", str(agent.config_path), "--remote",
                   check=True).stdout
    assert "copies: 6 of 6 photos in at least 2 copies" in text
    token = web_token(primary)
    shoots = web_get(primary, "/api/v1/shoots", token)["shoots"]
    assert shoots and all(s["copies"] == 2 for s in shoots), shoots
    listing = web_get(primary, "/api/v1/library?folder=laptop/photos", token)["photos"]
    details = web_get(primary, f"/api/v1/photos/{listing[0]['id']}", token)
    assert details["copies"] == 2 and all(v["copies"] == 2 for v in details["versions"])


def test_an_archive_down_during_an_import_is_caught_up_with_each_byte_sent_once(
        pair: tuple[ServerHandle, ServerHandle, AgentHandle]) -> None:
    """The archive stops; the agent syncs eight photos to the primary, which takes them all
    (its backlog shows their bytes pending); the archive returns and is caught up: every
    photo byte-identical there, and the bytes sent to it are exactly the photos' bytes."""
    primary, archive, agent = pair
    archive.daemon.terminate()
    total = _photos(agent.watches["photos"], range(10, 18))
    summary = agent.once()
    assert summary, summary
    assert len(tree_hashes(primary.storage / "library" / "laptop")) == 8
    wait_until(lambda: replication_metrics(primary).bytes_pending == total, 30,
               message="the backlog to show every photo's bytes")
    assert replication_metrics(primary).lag_s > 0
    assert unconfirmed_versions(primary) == 8
    archive.start()
    wait_until(lambda: _replicated(primary, archive), 90, message="catch-up")
    metrics = wait_until(lambda: (m := replication_metrics(primary)).bytes_pending == 0
                         and m, 30, message="backlog 0")
    assert metrics.bytes_sent == total
    assert metrics.confirmed == 8
    objects = [p for p in (archive.storage / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 8


def test_the_archive_takes_no_agent_uploads(
        pki: TestPki, pair: tuple[ServerHandle, ServerHandle, AgentHandle]) -> None:
    """An agent certificate (default scopes: none on the archive) is refused for good on
    RegisterAgent and SyncBatch, with the reason; the primary's own certificate registers."""
    _primary, archive, _agent = pair

    async def register(agent_id: str, cert: Path, key: Path) -> object:
        client = ServerClient(archive.endpoint, channel_credentials(cert, key, pki.ca),
                              agent_id)
        try:
            await client.ready(10)
            return await client.register(())
        except errors.PhotonicError as exc:
            return exc
        finally:
            await client.close()

    refused = asyncio.run(register("desktop", pki.agent_cert("desktop"),
                                   pki.agent_key("desktop")))
    assert isinstance(refused, errors.AuthError), refused
    assert "archive node" in str(refused) and "'replicate'" in str(refused)
    cert, key = server_identity(pki, PRIMARY_ID)
    assert not isinstance(asyncio.run(register(PRIMARY_ID, cert, key)), errors.PhotonicError)
    assert os.listdir(archive.storage / "library") in ([], [PRIMARY_ID])
