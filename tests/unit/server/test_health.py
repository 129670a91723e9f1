"""The server's health report: each check fails on its own, named, and the watch tells the
gRPC side only of changes."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from photonic.server.health import HealthReport, ServerHealth, watch_health
from photonic.server.metrics import ScrapeReadings, ServerMetrics


class FakeCatalog:
    def __init__(self) -> None:
        self.broken = False

    def probe(self) -> None:
        if self.broken:
            raise RuntimeError("database disk image is malformed")

    def last_sync_ms(self) -> int:
        return 1234


class FakeJobs:
    def state_counts(self) -> dict[str, int]:
        return {"PENDING": 2, "PROCESSING": 1}

    def state_counts_by_kind(self) -> dict[tuple[str, str], int]:
        return {("PENDING", "thumbnail"): 2}


def _health(root: Path, catalog: FakeCatalog, free: int = 10**9,
            timeout_s: float = 5.0) -> ServerHealth:
    (root / "partial").mkdir(parents=True, exist_ok=True)
    return ServerHealth(catalog, FakeJobs(), root, lambda: free, 10**6, timeout_s=timeout_s)


def test_a_healthy_server_reports_every_check_and_its_context(tmp_path: Path) -> None:
    """All checks pass: ok, the job counts and last sync are in, no probe file is left."""
    report = asyncio.run(_health(tmp_path, FakeCatalog()).report())
    assert report.ok and report.problems == {}
    body = report.as_json()
    assert (body["jobs_pending"], body["last_sync_unix_ms"], body["status"]) == (2, 1234, "ok")
    assert list((tmp_path / "partial").iterdir()) == []


def test_a_store_that_takes_no_file_fails_store_writable(tmp_path: Path) -> None:
    """partial/ replaced by a plain file (a create fails even for root): store_writable."""
    health = _health(tmp_path, FakeCatalog())
    (tmp_path / "partial").rmdir()
    (tmp_path / "partial").write_bytes(b"x")
    report = asyncio.run(health.report())
    assert not report.ok and not report.store_writable
    assert list(report.problems) == ["store_writable"]
    assert str(tmp_path) not in report.problems["store_writable"]


def test_low_disk_and_a_broken_catalog_are_each_named(tmp_path: Path) -> None:
    """Free space under min_free_space fails disk_free; a catalog that raises fails catalog."""
    catalog = FakeCatalog()
    catalog.broken = True
    report = asyncio.run(_health(tmp_path, catalog, free=10).report())
    assert set(report.problems) == {"catalog", "disk_free"}
    assert "malformed" in report.problems["catalog"]
    assert not report.catalog_reachable


def test_a_check_that_hangs_fails_after_the_time_limit(tmp_path: Path) -> None:
    """A disk (here: the free-space read) that does not answer is a failure, not a hang."""
    release = threading.Event()

    def hung() -> int:
        release.wait(5)
        return 10**9

    health = ServerHealth(FakeCatalog(), FakeJobs(), tmp_path, hung, 1, timeout_s=0.05)
    (tmp_path / "partial").mkdir()

    async def check() -> HealthReport:
        try:
            return await health.report()
        finally:
            release.set()  # before asyncio.run waits for the executor's threads

    report = asyncio.run(check())
    assert report.problems == {"disk_free": "no answer within 0.05 s"}


def test_the_watch_reports_only_changes(tmp_path: Path) -> None:
    """serving() hears True at start, False when the store breaks, True when it is back:
    once each, however many checks run in between."""
    health = _health(tmp_path, FakeCatalog())
    heard: list[bool] = []

    async def serving(ok: bool) -> None:
        heard.append(ok)

    async def scenario() -> None:
        task = asyncio.create_task(watch_health(health, serving, interval_s=0.01))
        await _until(lambda: heard == [True])
        (tmp_path / "partial").rename(tmp_path / "away")
        (tmp_path / "partial").write_bytes(b"x")
        await _until(lambda: heard == [True, False])
        (tmp_path / "partial").unlink()
        (tmp_path / "away").rename(tmp_path / "partial")
        await _until(lambda: heard == [True, False, True])
        task.cancel()

    asyncio.run(scenario())


async def _until(predicate: object) -> None:
    assert callable(predicate)
    async with asyncio.timeout(5):
        while not predicate():
            await asyncio.sleep(0.01)


def test_scrape_readings_set_jobs_by_state_and_kind_and_conflicts() -> None:
    """photonic_jobs{state,kind} carries every state of each kind seen (0 when none), and
    photonic_conflicts_open the catalog's count."""
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry)
    asyncio.run(ScrapeReadings(metrics, FakeJobs(), lambda: 4, lambda: 99).refresh())
    value = registry.get_sample_value
    assert value("photonic_jobs", {"state": "PENDING", "kind": "thumbnail"}) == 2
    assert value("photonic_jobs", {"state": "PROCESSING", "kind": "thumbnail"}) == 0
    assert value("photonic_conflicts_open") == 4
    assert value("photonic_server_storage_free_bytes") == 99


def test_lease_expiries_count_by_kind() -> None:
    """count_lease_expiries (the Dispatcher's expired callback) counts each job by kind."""
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry)
    jobs = [SimpleNamespace(kind="thumbnail"), SimpleNamespace(kind="thumbnail")]
    metrics.count_lease_expiries(jobs)  # type: ignore[arg-type]
    value = registry.get_sample_value("photonic_jobs_lease_expiries_total", {"kind": "thumbnail"})
    assert value == 2
