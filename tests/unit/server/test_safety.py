"""Safety by shoot (photonic.server.safety) on a real catalog and a real job queue: committed
photos grouped per agent, folder and capture time, merged with what the agent last reported as
queued; counts of photos only on the agent, verified on the server, and processed by a
completed job; sidecars left out, undated photos placed by mtime, the walk over many pages,
the agent filter and the limit; and the heartbeat's bounds on a report. The catalog is each
engine in turn (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from photonic import errors
from photonic.models import AgentId, AgentState, ExifSummary, Scope
from photonic.server.agents_service import AgentReport, AgentsService, Registration
from photonic.server.auth import Authorizer, Caller
from photonic.server.catalog import NewVersion, now_ms
from photonic.server.events import LocalEventHub
from photonic.server.jobs.queue import Lease, NewJob
from photonic.server.jobs.sqlite_queue import SqliteJobQueue
from photonic.server.safety import SafetyView, ShootSafety
from photonic.shoots import MAX_PENDING_SHOOTS, PendingShoot, pending_shoots_problem
from tests.support.catalogs import Catalogs
from tests.support.ingest import real_ingest_deps

MIN = 60_000
GAP = 120 * MIN
T0 = 1_700_000_000_000


class World:
    def __init__(self, root: Path, catalogs: Catalogs) -> None:
        self.catalog = catalogs.new(root)
        self.jobs = SqliteJobQueue(root / "jobs.db")
        self.catalog.register_agent("laptop", "laptop.local", "1")
        self.catalog.register_agent("desktop", "desktop.local", "1")
        self._n = 0

    def commit(self, agent: str, rel: str, t: int, camera: str = "Canon EOS R5",
               mtime_ms: int = 0) -> str:
        """A committed photo; t = 0 means no EXIF capture time (mtime_ms dates it)."""
        self._n += 1
        sha = f"{self._n:064x}"
        make, _, model = camera.partition(" ")
        self.catalog.commit_version(NewVersion(
            agent, "photos", rel, sha, 1000, ExifSummary(capture_time_unix_ms=t,
                                                         camera_make=make, camera_model=model),
            1, f"library/{agent}/photos/{rel}", True, mtime_ns=mtime_ms * 1_000_000))
        return sha

    def report(self, agent: str, *shoots: PendingShoot) -> int:
        self.catalog.heartbeat(agent, "monitoring", 0, 0, (), shoots)
        return now_ms()

    def complete_job(self, sha: str, job_id: str) -> None:
        self.jobs.add([NewJob(job_id, "facecrop", "admin", 3, input_sha256=sha)], now_ms())
        assert self.jobs.lease(job_id, "worker", now_ms() + 10_000, 10_000, now_ms())
        assert self.jobs.complete(Lease(job_id, 1), [], 5, now_ms())

    def shoots(self, agent: str = "", limit: int = 20, page: int = 2000) -> list[ShootSafety]:
        view = SafetyView(self.catalog, self.jobs, shoot_gap_ms=GAP, page_photos=page)
        return asyncio.run(view.recent_shoots(agent, limit))


@pytest.fixture
def world(tmp_path: Path, catalogs: Catalogs) -> Iterator[World]:
    w = World(tmp_path, catalogs)
    yield w
    w.jobs.close()


def _after(ms: int) -> None:
    """Until the wall clock has passed ms (commit times are compared with report times)."""
    while now_ms() <= ms:
        time.sleep(0.001)


def test_a_half_synced_shoot_counts_both_sides(world: World) -> None:
    """Three photos committed and two still queued in the same folder and hours make one
    shoot of five: two only on the agent, three verified on the server, one copy."""
    for i in range(3):
        world.commit("laptop", f"2024/trip/IMG_{i}.jpg", T0 + i * 10 * MIN)
    world.report("laptop", PendingShoot("photos", "2024/trip", T0 + 30 * MIN, T0 + 50 * MIN,
                                        2, 2000, "Canon EOS R5"))
    [shoot] = world.shoots()
    assert shoot == ShootSafety("laptop", "photos/2024/trip", T0, T0 + 50 * MIN,
                                "Canon EOS R5", 5, 2, 3, 1, 0)


def test_a_shoot_only_queued_is_all_on_the_agent(world: World) -> None:
    """A shoot the server holds nothing of (an agent that cannot send yet)."""
    world.report("laptop", PendingShoot("photos", "", T0, T0 + MIN, 4, 4000, ""))
    [shoot] = world.shoots()
    assert (shoot.folder, shoot.total, shoot.on_agent_only, shoot.on_server_verified) == (
        "photos", 4, 4, 0)


def test_photos_committed_after_the_report_no_longer_count_as_queued(world: World) -> None:
    """Between a sync and the agent's next heartbeat, photos committed since its report are
    taken off the reported queue instead of counting twice."""
    reported = world.report("laptop", PendingShoot("photos", "2024/trip", T0, T0 + 5 * MIN, 2,
                                                   2000, "Canon EOS R5"))
    _after(reported)
    world.commit("laptop", "2024/trip/IMG_0.jpg", T0)
    [shoot] = world.shoots()
    assert (shoot.total, shoot.on_agent_only, shoot.on_server_verified) == (2, 1, 1)


def test_gaps_cameras_folders_and_agents_split_shoots(world: World) -> None:
    """A gap over two hours, a camera change, another folder and another agent each start a
    shoot; the newest ending comes first."""
    world.commit("laptop", "2024/trip/a.jpg", T0)
    world.commit("laptop", "2024/trip/b.jpg", T0 + 60 * MIN)
    world.commit("laptop", "2024/trip/c.jpg", T0 + 70 * MIN, camera="Nikon Z6")
    world.commit("laptop", "2024/trip/d.jpg", T0 + 300 * MIN)
    world.commit("laptop", "2024/home/e.jpg", T0 + 65 * MIN)
    world.commit("desktop", "2024/trip/f.jpg", T0 + 65 * MIN)
    got = [(s.agent_id, s.folder, s.start_ms - T0, s.end_ms - T0, s.camera, s.total)
           for s in world.shoots()]
    assert got == [
        ("laptop", "photos/2024/trip", 300 * MIN, 300 * MIN, "Canon EOS R5", 1),
        ("laptop", "photos/2024/trip", 70 * MIN, 70 * MIN, "Nikon Z6", 1),
        ("desktop", "photos/2024/trip", 65 * MIN, 65 * MIN, "Canon EOS R5", 1),
        ("laptop", "photos/2024/home", 65 * MIN, 65 * MIN, "Canon EOS R5", 1),
        ("laptop", "photos/2024/trip", 0, 60 * MIN, "Canon EOS R5", 2),
    ]
    assert [s.agent_id for s in world.shoots("desktop")] == ["desktop"]
    assert len(world.shoots(limit=2)) == 2


def test_processed_counts_photos_a_completed_job_took(world: World) -> None:
    """One photo with a completed job, one with a job still pending: one processed."""
    done = world.commit("laptop", "2024/trip/a.jpg", T0)
    waiting = world.commit("laptop", "2024/trip/b.jpg", T0 + MIN)
    world.complete_job(done, "job-1")
    world.jobs.add([NewJob("job-2", "facecrop", "admin", 3, input_sha256=waiting)], now_ms())
    [shoot] = world.shoots()
    assert (shoot.total, shoot.processed) == (2, 1)


def test_sidecars_are_no_photos_and_undated_photos_go_by_mtime(world: World) -> None:
    """An XMP beside a photo is not counted; a photo without EXIF time joins the shoot its
    file time falls in."""
    world.commit("laptop", "2024/trip/a.CR3", T0)
    world.commit("laptop", "2024/trip/a.xmp", 0, camera="", mtime_ms=T0 + 500 * MIN)
    world.commit("laptop", "2024/trip/scan.png", 0, camera="", mtime_ms=T0 + 5 * MIN)
    [shoot] = world.shoots()
    assert (shoot.total, shoot.start_ms, shoot.end_ms) == (2, T0, T0 + 5 * MIN)


def test_the_walk_back_in_time_spans_many_pages(world: World) -> None:
    """Photos read three at a time: shoots that cross page boundaries come out whole."""
    for shoot in range(4):
        for i in range(5):
            world.commit("laptop", f"s{shoot}/{i}.jpg", T0 + shoot * 1000 * MIN + i * MIN)
    got = [(s.folder, s.total) for s in world.shoots(page=3, limit=3)]
    assert got == [("photos/s3", 5), ("photos/s2", 5), ("photos/s1", 5)]


def test_limits_and_bounds_are_refused_clearly(world: World) -> None:
    """limit outside 1..200 is refused; a report over 50 shoots or with an overlong folder
    is refused (the heartbeat answers INVALID_ARGUMENT)."""
    for bad in (0, 201):
        with pytest.raises(errors.InvalidInput):
            world.shoots(limit=bad)
    one = PendingShoot("photos", "x", T0, T0, 1, 1)
    assert pending_shoots_problem([one] * MAX_PENDING_SHOOTS) == ""
    assert "at most 50" in pending_shoots_problem([one] * (MAX_PENDING_SHOOTS + 1))
    assert pending_shoots_problem([PendingShoot("photos", "x" * 1025, T0, T0, 1, 1)])
    assert pending_shoots_problem([PendingShoot("photos", "x", T0, T0 - 1, 1, 1)])


def test_the_heartbeat_stores_a_report_and_refuses_one_beyond_bounds(tmp_path: Path) -> None:
    """AgentsService.heartbeat replaces the agent's stored report with each heartbeat and
    refuses a report over its bounds with InvalidInput (nothing stored)."""
    deps = real_ingest_deps(tmp_path)
    auth = Authorizer({}, frozenset({Scope.SYNC}), deps.catalog, deps.metrics)
    service = AgentsService(deps.catalog, deps.library, LocalEventHub(), deps.metrics, auth.audit,
                            max_agents=10)
    laptop = Caller(AgentId("laptop"), frozenset({Scope.SYNC}))
    shoot = PendingShoot("photos", "2024", T0, T0 + MIN, 3, 3000, "Canon EOS R5")

    async def go() -> None:
        await service.register(laptop, Registration("laptop.local", "1.0"))
        await service.heartbeat(laptop, AgentReport(AgentState.MONITORING, 3, 3000, (), (shoot,)))
        assert [r.shoot for r in deps.catalog.reported_shoots("laptop")] == [shoot]
        with pytest.raises(errors.InvalidInput):
            await service.heartbeat(laptop, AgentReport(
                AgentState.MONITORING, 3, 3000, (), (shoot,) * (MAX_PENDING_SHOOTS + 1)))
        assert [r.shoot for r in deps.catalog.reported_shoots("laptop")] == [shoot]
        await service.heartbeat(laptop, AgentReport(AgentState.MONITORING))
        assert deps.catalog.reported_shoots("laptop") == []

    asyncio.run(go())
