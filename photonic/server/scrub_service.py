"""The background scrub: every stored object re-hashed once per `storage.scrub_interval`, at
most `storage.scrub_rate` bytes a second, in one low-priority thread of its own. Where it is
in a pass is kept in the catalog (scrub_tables), so a restart continues the pass. A damaged
or unreadable object is quarantined (ObjectVerifier: kept, never served, never deleted) and
repaired from a replica (repair.py); one that no replica gives back is reported loudly: a
metric, an audit row, a dashboard event and the ERROR log line, and /healthz counts it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from photonic.logfmt import event
from photonic.server.catalog import Catalog
from photonic.server.events import EventHub, ServerEvent
from photonic.server.repair import ObjectRepairer
from photonic.server.scrub import RatePacer
from photonic.server.scrub_tables import ScrubTables
from photonic.server.verification import ObjectVerifier

log = logging.getLogger("photonic.server.scrub")

PAGE = 200
SAVE_EVERY_S = 5.0
"""How often the cursor is written: a crash re-reads at most this much of the pass."""
SCRUB_ACTOR = "scrub"
IDLE_REFRESH_S = 10.0

Audit = Callable[[str, str, str, str, str], Awaitable[None]]
"""(actor, action, target, result, detail), as Authorizer.audit."""


class ScrubMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.checked = Counter("photonic_scrub_objects_checked_total",
                               "Stored objects the scrub re-hashed", registry=registry)
        self.bytes_checked = Counter("photonic_scrub_bytes_checked_total",
                                     "Bytes the scrub re-hashed", registry=registry)
        self.damaged = Counter("photonic_scrub_damaged_total",
                               "Stored objects the scrub found damaged or unreadable",
                               registry=registry)
        self.repaired = Counter("photonic_scrub_repaired_total",
                                "Damaged objects repaired from a replica", registry=registry)
        self.unrepaired = Gauge("photonic_scrub_unrepaired",
                                "Quarantined or missing objects no repair has replaced",
                                registry=registry)
        self.last_pass = Gauge("photonic_scrub_last_pass_completed_timestamp_seconds",
                               "When the scrub last finished a pass over every object",
                               registry=registry)


@dataclass(frozen=True)
class Finding:
    sha256: str
    size: int
    reason: str
    new: bool  # found damaged now; False: quarantined before and still not repaired


class ScrubWalk:
    """One pass (or the rest of one) over the catalog's objects; blocking, in the scrub's
    thread. The cursor is saved every SAVE_EVERY_S, so a restart continues near it."""

    def __init__(self, tables: ScrubTables, verifier: ObjectVerifier, catalog: Catalog,
                 rate_bytes_per_s: int, *, clock: Callable[[], float] = time.monotonic,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 save_every_s: float = SAVE_EVERY_S,
                 pause: Callable[[threading.Event, float], None] | None = None) -> None:
        """pause(stop, seconds): how the walk waits to keep to its rate (a wait on stop, so a
        stop ends it at once)."""
        self._tables = tables
        self._verifier = verifier
        self._catalog = catalog
        self._rate = rate_bytes_per_s
        self._clock = clock
        self._wall_ms = wall_ms
        self._save_every_s = save_every_s
        self._pause = pause or _pause

    def run(self, stop: threading.Event, found: Callable[[Finding], None],
            checked: Callable[[int], None]) -> bool:
        """Walks from the saved cursor to the end; True when the pass completed, False when
        stop was set first (the cursor is saved either way)."""
        progress = self._tables.progress()
        cursor = progress.cursor_sha256 if progress.in_pass else ""
        if not progress.in_pass:
            self._tables.start_pass(self._wall_ms())
        pacer = RatePacer(self._rate, clock=self._clock, sleep=lambda s: self._pause(stop, s))
        tally = _Tally(self._clock())
        while not stop.is_set():
            page = self._tables.objects_after(cursor, PAGE)
            if not page:
                break
            for sha256, size in page:
                if stop.is_set():
                    break
                finding = self._check(sha256, size)
                cursor = sha256
                tally.add(size if finding is None else 0, finding is not None and finding.new)
                checked(size)
                if finding is not None:
                    found(finding)
                else:
                    pacer.spent(size)
                if self._clock() - tally.since >= self._save_every_s:
                    self._save(cursor, tally)
        self._save(cursor, tally)
        if stop.is_set():
            return False
        self._tables.finish_pass(self._wall_ms())
        return True

    def _check(self, sha256: str, size: int) -> Finding | None:
        was_open = bool(self._catalog.open_quarantine(sha256))
        problem = self._verifier.verify(sha256, size)
        if not problem:
            return None
        if not was_open and not self._catalog.open_quarantine(sha256):
            # Missing, with nothing left to move aside: recorded all the same, so agents are
            # asked for it and the count of unrepaired objects includes it.
            self._catalog.record_quarantine(sha256, "", problem)
        return Finding(sha256, size, problem, new=not was_open)

    def _save(self, cursor: str, tally: _Tally) -> None:
        self._catalog.make_durable()  # the verification records, with the cursor after them
        self._tables.advance(cursor, tally.objects, tally.nbytes, tally.damaged)
        tally.reset(self._clock())


class _Tally:
    def __init__(self, since: float) -> None:
        self.reset(since)

    def reset(self, since: float) -> None:
        self.since = since
        self.objects = self.nbytes = self.damaged = 0

    def add(self, nbytes: int, damaged: bool) -> None:
        self.objects += 1
        self.nbytes += nbytes
        self.damaged += int(damaged)


def _pause(stop: threading.Event, seconds: float) -> None:
    stop.wait(seconds)  # a stop ends the pause at once


def _lower_priority() -> None:
    """The scrub's own thread yields the CPU to sync (Linux nices threads one by one)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class ScrubService:
    """Runs passes when they are due and handles what they find; start() / stop()."""

    def __init__(self, walk: ScrubWalk, tables: ScrubTables, repairer: ObjectRepairer,
                 metrics: ScrubMetrics, events: EventHub, audit: Audit, *,
                 interval_s: float, wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)
                 ) -> None:
        self._walk = walk
        self._tables = tables
        self._repairer = repairer
        self._metrics = metrics
        self._events = events
        self._audit = audit
        self._interval_ms = int(interval_s * 1000)
        self._wall_ms = wall_ms
        self._stop_thread = threading.Event()
        self._stopping = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="photonic-scrub",
                                            initializer=_lower_priority)
        self._task: asyncio.Task[None] | None = None
        self._unrepaired = 0

    @property
    def unrepaired(self) -> int:
        return self._unrepaired

    async def start(self) -> None:
        progress = await asyncio.to_thread(self._tables.progress)
        if progress.last_completed_ms:
            self._metrics.last_pass.set(progress.last_completed_ms / 1000)
        await self._refresh_unrepaired()
        self._task = asyncio.create_task(self._run(), name="scrub")

    async def stop(self) -> None:
        self._stopping.set()
        self._stop_thread.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)
        await self._repairer.close()

    def status(self) -> dict[str, object]:
        """For /healthz: blocking (reads the catalog)."""
        p = self._tables.progress()
        return {"unrepaired": self._tables.unrepaired_count(), "in_pass": p.in_pass,
                "pass_started_unix_ms": p.pass_started_ms, "objects_checked": p.objects_checked,
                "damaged_this_pass": p.damaged, "last_pass_completed_unix_ms":
                p.last_completed_ms, "repair_from": self._repairer.source_names}

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            progress = await asyncio.to_thread(self._tables.progress)
            due_ms = progress.pass_started_ms + self._interval_ms
            if not progress.in_pass and progress.pass_started_ms and self._wall_ms() < due_ms:
                # Idle until the next pass; the count of unrepaired objects is kept fresh
                # meanwhile (`photonic scrub --now` or an agent's upload may repair some).
                await self._pause(min(IDLE_REFRESH_S, (due_ms - self._wall_ms()) / 1000))
                await self._refresh_unrepaired()
                continue
            event(log, "scrub_pass_started" if not progress.in_pass else "scrub_pass_resumed",
                  cursor=progress.cursor_sha256[:16] if progress.in_pass else "")
            try:
                completed = await loop.run_in_executor(
                    self._executor, self._walk.run, self._stop_thread,
                    lambda f: self._found_in_thread(loop, f), self._count)
            except Exception:
                log.exception("scrub pass failed; retried at the next interval")
                await self._pause(60.0)
                continue
            if completed:
                await self._finish_pass()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _count(self, nbytes: int) -> None:
        self._metrics.checked.inc()
        self._metrics.bytes_checked.inc(nbytes)

    def _found_in_thread(self, loop: asyncio.AbstractEventLoop, finding: Finding) -> None:
        """The walk waits while its finding is handled (repairs are rare, and low priority)."""
        future = asyncio.run_coroutine_threadsafe(self.handle(finding), loop)
        try:
            future.result()
        except Exception:  # the walk goes on; the object stays quarantined and counted
            log.exception("handling a damaged object failed")

    async def handle(self, finding: Finding) -> bool:
        """Reports a damaged object and repairs it from a replica; True when repaired."""
        if finding.new:
            self._metrics.damaged.inc()
            await self._audit(SCRUB_ACTOR, "ScrubQuarantine", finding.sha256, "quarantined",
                              finding.reason)
            self._publish("object_quarantined", finding.sha256, finding.size, finding.reason)
        fetched = await self._repairer.repair(finding.sha256, finding.size)
        if fetched.ok:
            self._metrics.repaired.inc()
            await self._audit(SCRUB_ACTOR, "ScrubRepair", finding.sha256, "ok",
                              f"fetched from {fetched.node}, verified and stored")
            self._publish("object_repaired", finding.sha256, finding.size,
                          f"repaired from {fetched.node}")
        else:
            why = "; ".join(fetched.problems)
            event(log, "object_unrepairable", logging.ERROR, sha256=finding.sha256[:16],
                  reason=finding.reason, tried=why)
            await self._audit(SCRUB_ACTOR, "ScrubRepair", finding.sha256, "failed",
                              f"{finding.reason}; no replica gave it back: {why}")
            self._publish("object_unrepairable", finding.sha256, finding.size,
                          f"{finding.reason}; no replica gave it back: {why}")
        await self._refresh_unrepaired()
        return fetched.ok

    async def _finish_pass(self) -> None:
        p = await asyncio.to_thread(self._tables.progress)
        self._metrics.last_pass.set(p.last_completed_ms / 1000)
        await self._refresh_unrepaired()
        event(log, "scrub_pass_completed", objects=p.objects_checked, bytes=p.bytes_checked,
              damaged=p.damaged, unrepaired=self._unrepaired)

    async def _refresh_unrepaired(self) -> None:
        self._unrepaired = await asyncio.to_thread(self._tables.unrepaired_count)
        self._metrics.unrepaired.set(self._unrepaired)

    def _publish(self, kind: str, sha256: str, size: int, detail: str) -> None:
        self._events.publish(ServerEvent(kind=kind, agent_id="", sha256=sha256, size=size,
                                         detail=detail))
