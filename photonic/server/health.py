"""The server's health, as the application layer sees it: the catalog answers, the store
takes a write, the disk keeps its reserve; with the job queue and the last sync as context.
`/healthz` (200/503) and the gRPC health service (SERVING/NOT_SERVING) both report it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from photonic.logfmt import event
from photonic.writeprobe import write_problem

log = logging.getLogger("photonic.server.health")

PROBE_TIMEOUT_S = 5.0
"""A check that has not answered in this time fails: a hung disk is not a healthy one."""
WATCH_INTERVAL_S = 5.0

T = TypeVar("T")


class HealthCatalog(Protocol):
    def probe(self) -> None: ...
    def last_sync_ms(self) -> int: ...


class StateCounts(Protocol):
    def state_counts(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class HealthReport:
    catalog_reachable: bool
    store_writable: bool
    storage_free_bytes: int
    min_free_bytes: int
    jobs_by_state: dict[str, int]
    last_sync_unix_ms: int
    problems: dict[str, str]
    """Each failing check by name, with what is wrong; empty when healthy."""
    scrub: Mapping[str, object] = field(default_factory=dict)
    """The background scrub: its pass and the objects left unrepaired (`unrepaired`). Shown,
    not a failing check: a server with one damaged photo still serves all the others."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, object]:
        return {
            "status": "ok" if self.ok else "unhealthy", "problems": self.problems,
            "catalog_reachable": self.catalog_reachable, "store_writable": self.store_writable,
            "storage_free_bytes": self.storage_free_bytes,
            "storage_ok": self.storage_free_bytes >= self.min_free_bytes,
            "min_free_bytes": self.min_free_bytes, "jobs": self.jobs_by_state,
            "jobs_pending": self.jobs_by_state.get("PENDING", 0),
            "last_sync_unix_ms": self.last_sync_unix_ms,
            "time_unix_ms": int(time.time() * 1000),
            **({"scrub": dict(self.scrub)} if self.scrub else {}),
        }


class ServerHealth:
    """Runs the checks, each in a thread with a time limit (they touch SQLite and the disk)."""

    def __init__(self, catalog: HealthCatalog, jobs: StateCounts, store_root: Path,
                 free_bytes: Callable[[], int], min_free_bytes: int, *,
                 timeout_s: float = PROBE_TIMEOUT_S,
                 scrub: Callable[[], Mapping[str, object]] | None = None) -> None:
        """scrub: the scrub's status, read in a thread (it reads the catalog)."""
        self._catalog = catalog
        self._jobs = jobs
        self._probe_dir = store_root / "partial"  # where every upload's first byte lands
        self._free_bytes = free_bytes
        self._min_free_bytes = min_free_bytes
        self._timeout_s = timeout_s
        self._scrub = scrub

    async def report(self) -> HealthReport:
        problems: dict[str, str] = {}
        catalog = await self._check(problems, "catalog", self._catalog_problem)
        store = await self._check(problems, "store_writable",
                                  lambda: _folder_problem(self._probe_dir))
        free = await self._value(problems, "disk_free", self._free_bytes, -1)
        if free >= 0 and free < self._min_free_bytes:
            problems["disk_free"] = (f"{free} bytes free, under min_free_space "
                                     f"({self._min_free_bytes} bytes)")
        jobs: dict[str, int] = await self._value(problems, "jobs_queue", self._jobs.state_counts,
                                                  {})
        last = await self._value(problems, "catalog", self._catalog.last_sync_ms, 0)
        scrub: Mapping[str, object] = {}
        if self._scrub is not None:
            scrub = await self._value(problems, "scrub", self._scrub, {})
        return HealthReport(catalog, store, free, self._min_free_bytes, jobs, last, problems,
                            scrub)

    def _catalog_problem(self) -> str:
        self._catalog.probe()
        return ""

    async def _check(self, problems: dict[str, str], name: str,
                     check: Callable[[], str]) -> bool:
        problem = await self._value(problems, name, check, "")
        if problem:
            problems[name] = problem
        return name not in problems

    async def _value(self, problems: dict[str, str], name: str, read: Callable[[], T],
                        failed: T) -> T:
        try:
            return await asyncio.wait_for(asyncio.to_thread(read), self._timeout_s)
        except TimeoutError:
            problems.setdefault(name, f"no answer within {self._timeout_s:g} s")
        except Exception as e:  # an unreachable catalog may raise anything sqlite3 raises
            problems.setdefault(name, f"{type(e).__name__}: {e}")
        return failed


def _folder_problem(folder: Path) -> str:
    problem = write_problem(folder)
    return f"storage {folder.name}/ does not take writes: {problem}" if problem else ""


async def watch_health(health: ServerHealth, serving: Callable[[bool], Awaitable[None]], *,
                       interval_s: float = WATCH_INTERVAL_S) -> None:
    """Tells `serving` the health at once and then at every change, checking every
    interval_s; logs each transition once. Runs until cancelled."""
    last: bool | None = None
    while True:
        try:
            report = await health.report()
        except Exception:
            log.exception("health check failed")
        else:
            if report.ok is not last:
                await serving(report.ok)
                if last is not None or not report.ok:
                    event(log, "health_changed", ok=report.ok,
                          problems=";".join(f"{k}={v}" for k, v in report.problems.items()))
                last = report.ok
        await asyncio.sleep(interval_s)
