"""Crashes: SIGKILL the server or the agent at seeded random moments of a sync, and the server
at each named crash point (between "renamed into the store", "linked into the library",
"catalog committed" and "acknowledgement sent"), many times per run in small waves of photos;
after each restart, every photo must arrive exactly once, byte-identical, before the next kill."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from functools import partial
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
    acknowledged_files,
    config_catalog_rows,
    make_agent,
    start_server,
    wait_until,
)
from tests.support.pki import TestPki
from tests.support.stored import bucket_in

pytestmark = pytest.mark.chaos

WAVE = 8
"""Photos written for each kill: small waves keep a kill, its restart and the convergence
after it to a few seconds, so that a CI run kills often."""
SERVER_KILLS = 24
AGENT_KILLS = 20
POINT_AFTERS = {"after_store_rename": (1, 3, 5, 8), "after_library_link": (1, 4, 6, 8),
                "after_catalog_commit": (1, 2, 1, 3)}
"""For each named crash point, the pass at which each of its kills lands (one server start
per kill): early and late in a wave (a group commit is one pass of after_catalog_commit)."""
SEED = 20240601
KILL_JITTER_S = 0.2
THROTTLED = {"network": {"max_bandwidth": "512KB/s", "chunk_size": "64KiB",
                         "parallel_transfers": 2}}


def _waves(count: int) -> list[range]:
    return [range(i * WAVE, (i + 1) * WAVE) for i in range(count)]


def _kill_after_progress(victim: Daemon, server: ServerHandle, rng: random.Random) -> None:
    """Waits for the sync to make progress, then kills at a seeded random moment after it:
    the pause chooses where in the transfer the crash lands, it synchronizes nothing."""
    before = commits_logged(server)
    wait_until(lambda: commits_logged(server) > before, 60, message="sync progress")
    time.sleep(rng.uniform(0.0, KILL_JITTER_S))
    victim.kill()


@pytest.mark.timeout(360)  # 20-24 kill-and-converge rounds: 110 s on S3 beside others
def test_server_killed_repeatedly_during_sync_loses_nothing(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """Twenty-four SIGKILLs of the server, each at a seeded random moment of a fresh wave of
    eight photos: after each restart the agent resumes on its own and every photo so far is
    in the library exactly once, intact, before the next kill; the final check at rest agrees."""
    rng = random.Random(SEED)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server, extra=THROTTLED)
    daemons.append(agent.daemon)
    agent.start()
    for wave in _waves(SERVER_KILLS):
        write_photos(agent.watches["photos"], wave)
        _kill_after_progress(server.daemon, server, rng)
        TALLY.server_kills += 1
        server.start()
        wait_converged(server, [agent])
    report = final_verification(server, [agent])
    assert report.photos_verified == SERVER_KILLS * WAVE


@pytest.mark.timeout(360)  # 20-24 kill-and-converge rounds: 110 s on S3 beside others
def test_agent_killed_repeatedly_during_sync_loses_nothing(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """Twenty SIGKILLs of the agent (a reference folder and an ingest card, alternately fed
    a wave of eight photos) at seeded random points: each restart picks up its durable queue
    and the library converges, nothing lost or recorded twice, before the next kill."""
    rng = random.Random(SEED + 1)
    root = tmp_path / "desktop"
    watches = {"photos": root / "photos", "card": root / "card"}
    agent = make_agent(root, pki, "desktop", server, watches,
                       extra={**THROTTLED, "agent": {"watch": [
                           {"path": str(watches["photos"]), "name": "photos"},
                           {"path": str(watches["card"]), "name": "card", "mode": "ingest"}]}})
    daemons.append(agent.daemon)
    agent.start()
    for i, wave in enumerate(_waves(AGENT_KILLS)):
        folder = watches["card"] if i % 2 else watches["photos"]
        write_photos(folder, wave, prefix=f"W{i}")
        _kill_after_progress(agent.daemon, server, rng)
        TALLY.agent_kills += 1
        agent.start()
        wait_converged(server, [agent])
    report = final_verification(server, [agent])
    assert report.photos_verified == AGENT_KILLS * WAVE
    assert not list((agent.buffer / "ingest").rglob("*.NEF")), "synced ingest copies pruned"


def _catalog_shas(storage: Path) -> set[str]:
    return {str(r[0]) for r in config_catalog_rows(storage.parent / "server.yaml", storage,
                                                   "SELECT sha256 FROM versions")}


def _objects(storage: Path) -> set[str]:
    """The objects the server whose storage_path is storage holds, locally or in its bucket."""
    bucket = bucket_in(storage.parent / "server.yaml")
    if bucket is not None:
        return bucket.digests()
    return {p.name for p in (storage / "objects").rglob("*") if p.is_file()}


def _armed_start(server: ServerHandle, point: str, after: int,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Starts the server armed to SIGKILL itself at `point` on its `after`-th pass."""
    monkeypatch.setenv(POINT_ENV, point)
    monkeypatch.setenv(AFTER_ENV, str(after))
    server.start()
    monkeypatch.delenv(POINT_ENV)
    monkeypatch.delenv(AFTER_ENV)


def _dead_or_synced(server: ServerHandle, agent: AgentHandle, wave: list[Path]) -> bool:
    if not server.daemon.running:
        return True
    acknowledged = acknowledged_files(agent.buffer)
    folder = agent.watches["photos"]
    return all(("photos", p.relative_to(folder).as_posix()) in acknowledged for p in wave)


def _feed_until_dead(server: ServerHandle, agent: AgentHandle, point: str,
                     waves: Iterator[range]) -> None:
    """Writes a wave of photos, and another if the server synced it all without reaching the
    armed pass (a group commit covers several photos in one pass); returns once it died."""
    for _ in range(3):
        wave = write_photos(agent.watches["photos"], next(waves))
        wait_until(partial(_dead_or_synced, server, agent, wave), 60,
                   message=f"the server to die at {point} or sync the wave")
        if not server.daemon.running:
            return
    raise AssertionError(f"three waves synced without reaching {point}")


def _after_point(point: str, storage: Path, agent: AgentHandle) -> None:
    """What the server left at the moment it died, which the retry must make whole."""
    if point == "after_store_rename":
        assert _objects(storage) - _catalog_shas(storage), "an object no catalog row names"
    elif point == "after_catalog_commit":
        assert queue_depth(agent.buffer) > 0, "the agent still holds the unacknowledged file"


@pytest.mark.parametrize("point", sorted(POINT_AFTERS))
def test_server_killed_at_each_crash_point_loses_nothing(
        point: str, tmp_path: Path, pki: TestPki, monkeypatch: pytest.MonkeyPatch,
        daemons: list[Daemon]) -> None:
    """The server SIGKILLs itself at a named point, four times, at early and late passes of a
    wave: after the content is renamed into objects/ but before its catalog row
    (the object is there, unrecorded), after the library file is linked but before its row,
    or after the catalog commit but before COMMITTED is sent (the agent still holds the file).
    After each restart the agent's retry records every photo exactly once, intact, and no
    `.photonic-tmp-*` temporary stays visible (regression: a rename between two links of one
    inode is a no-op and used to leave it behind)."""
    afters = POINT_AFTERS[point]
    monkeypatch.setenv(POINT_ENV, point)
    monkeypatch.setenv(AFTER_ENV, str(afters[0]))
    server = start_server(tmp_path / "server", pki)
    monkeypatch.delenv(POINT_ENV)
    monkeypatch.delenv(AFTER_ENV)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server, extra=THROTTLED)
    daemons.extend([server.daemon, agent.daemon])
    agent.start()
    waves = iter(_waves(3 * len(afters)))
    for i, after in enumerate(afters):
        if i:
            server.daemon.terminate()
            _armed_start(server, point, after, monkeypatch)
        _feed_until_dead(server, agent, point, waves)
        TALLY.server_kills += 1
        _after_point(point, server.storage, agent)
        server.start()
        wait_converged(server, [agent])
    final_verification(server, [agent])
