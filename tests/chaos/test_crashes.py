"""Crashes: SIGKILL the server or the agent at seeded random moments of a sync, and at the two
points between "renamed into the store", "catalog committed" and "acknowledgement sent"; after
each restart, every photo must arrive exactly once, byte-identical."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import pytest

from photonic.server.faults import AFTER_ENV, POINT_ENV
from tests.chaos.scenario import (
    commits_logged,
    final_verification,
    queue_depth,
    wait_converged,
    write_photos,
)
from tests.chaos.tally import TALLY
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    make_agent,
    start_server,
    wait_until,
)
from tests.support.pki import TestPki

pytestmark = pytest.mark.chaos

PHOTOS = 200
KILLS = 6
SEED = 20240601
THROTTLED = {"network": {"max_bandwidth": "3MB/s", "chunk_size": "64KiB",
                         "parallel_transfers": 2}}


def _waves(total: int, count: int) -> list[range]:
    step = -(-total // count)
    return [range(start, min(total, start + step)) for start in range(0, total, step)]


def _kill_after_progress(victim: Daemon, server: ServerHandle, rng: random.Random) -> None:
    """Waits for the sync to make progress, then kills at a seeded random moment after it:
    the pause chooses where in the transfer the crash lands, it synchronizes nothing."""
    before = commits_logged(server)
    wait_until(lambda: commits_logged(server) > before, 60, message="sync progress")
    time.sleep(rng.uniform(0.0, 0.5))
    victim.kill()


def test_server_killed_repeatedly_during_sync_loses_nothing(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """Six SIGKILLs of the server at seeded random points of a 200-photo sync, each followed
    by a restart: the agent resumes on its own and the library ends complete and exact."""
    rng = random.Random(SEED)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server, extra=THROTTLED)
    daemons.append(agent.daemon)
    waves = _waves(PHOTOS, KILLS)
    write_photos(agent.watches["photos"], waves[0])
    agent.start()
    for wave in [*waves[1:], range(0)]:
        _kill_after_progress(server.daemon, server, rng)
        TALLY.server_kills += 1
        write_photos(agent.watches["photos"], wave)
        server.start()
    wait_converged(server, [agent])
    report = final_verification(server, [agent])
    assert report.photos_verified == PHOTOS


def test_agent_killed_repeatedly_during_sync_loses_nothing(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """Six SIGKILLs of the agent (a reference folder and an ingest card) at seeded random
    points: each restart picks up its durable queue, nothing is lost or recorded twice."""
    rng = random.Random(SEED + 1)
    root = tmp_path / "desktop"
    watches = {"photos": root / "photos", "card": root / "card"}
    agent = make_agent(root, pki, "desktop", server, watches,
                       extra={**THROTTLED, "agent": {"watch": [
                           {"path": str(watches["photos"]), "name": "photos"},
                           {"path": str(watches["card"]), "name": "card", "mode": "ingest"}]}})
    daemons.append(agent.daemon)
    waves = _waves(PHOTOS, KILLS)
    for i, wave in enumerate(waves):
        folder = watches["card"] if i % 2 else watches["photos"]
        write_photos(folder, wave, prefix=f"W{i}")
    agent.start()
    for _ in range(KILLS):
        _kill_after_progress(agent.daemon, server, rng)
        TALLY.agent_kills += 1
        agent.start()
    wait_converged(server, [agent])
    report = final_verification(server, [agent])
    assert report.photos_verified == PHOTOS
    assert not list((agent.buffer / "ingest").rglob("*.NEF")), "synced ingest copies pruned"


def _catalog_shas(storage: Path) -> set[str]:
    with sqlite3.connect(storage / "catalog.db") as conn:
        rows = conn.execute("SELECT sha256 FROM versions").fetchall()
    conn.close()
    return {str(r[0]) for r in rows}


def _objects(storage: Path) -> set[str]:
    return {p.name for p in (storage / "objects").rglob("*") if p.is_file()}


def _crash_at(point: str, after: int, tmp_path: Path, pki: TestPki,
              monkeypatch: pytest.MonkeyPatch) -> tuple[ServerHandle, AgentHandle]:
    """A server armed to SIGKILL itself at `point` on its `after`-th pass, and an agent
    syncing into it; returns once the server has died there."""
    monkeypatch.setenv(POINT_ENV, point)
    monkeypatch.setenv(AFTER_ENV, str(after))
    server = start_server(tmp_path / "server", pki)
    monkeypatch.delenv(POINT_ENV)
    monkeypatch.delenv(AFTER_ENV)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server, extra=THROTTLED)
    write_photos(agent.watches["photos"], range(40))
    agent.start()
    wait_until(lambda: not server.daemon.running, 60, message=f"the server to die at {point}")
    TALLY.server_kills += 1
    return server, agent


@pytest.mark.parametrize("after", [1, 7])
def test_kill_between_store_rename_and_catalog_commit(
        tmp_path: Path, pki: TestPki, monkeypatch: pytest.MonkeyPatch, daemons: list[Daemon],
        after: int) -> None:
    """A crash after the content is renamed into objects/ but before its catalog row: the
    object is there, unrecorded; after a restart the agent's retry records it exactly once."""
    server, agent = _crash_at("after_store_rename", after, tmp_path, pki, monkeypatch)
    daemons.extend([server.daemon, agent.daemon])
    assert _objects(server.storage) - _catalog_shas(server.storage), "an unrecorded object"
    server.start()
    wait_converged(server, [agent])
    final_verification(server, [agent])


@pytest.mark.parametrize("after", [1, 5])
def test_kill_between_catalog_commit_and_acknowledgement(
        tmp_path: Path, pki: TestPki, monkeypatch: pytest.MonkeyPatch, daemons: list[Daemon],
        after: int) -> None:
    """A crash after the catalog commit but before COMMITTED is sent: the agent still holds
    the file in its queue, sends it again, and the server answers without a second version."""
    server, agent = _crash_at("after_catalog_commit", after, tmp_path, pki, monkeypatch)
    daemons.extend([server.daemon, agent.daemon])
    assert len(_catalog_shas(server.storage)) >= after
    assert queue_depth(agent.buffer) > 0
    server.start()
    wait_converged(server, [agent])
    final_verification(server, [agent])


def test_kill_between_library_link_and_catalog_commit(
        tmp_path: Path, pki: TestPki, monkeypatch: pytest.MonkeyPatch,
        daemons: list[Daemon]) -> None:
    """A crash after the library file is linked but before its catalog row: the retry links
    the same content again, and no `.photonic-tmp-*` temporary stays visible (regression: a
    rename between two links of one inode is a no-op and used to leave it behind)."""
    server, agent = _crash_at("after_library_link", 3, tmp_path, pki, monkeypatch)
    daemons.extend([server.daemon, agent.daemon])
    server.start()
    wait_converged(server, [agent])
    final_verification(server, [agent])
