"""Push dispatch: which connected worker runs which pending job, the moment both exist.

Each Work stream is a WorkerSession: its capability tags, how many jobs it said it runs at
once (and its current Capacity), the leases it holds, and the orders waiting to be written
to it. One assign pass at a time walks the pending jobs by priority (submitters taking turns
within a priority) and leases each to a free worker that can run it, preferring one that
already holds the input. A worker never gets more than its free slots: nothing is
prefetched. A second loop returns expired leases to the queue and stops overdue attempts."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from photonic.jobs_model import (
    Assignment,
    CancelOrder,
    Job,
    ReportRefused,
    ServerOrder,
    StreamTerms,
    WorkerHello,
    parse_tags,
    satisfies,
)
from photonic.server.jobs.queue import JobQueue, Lease
from photonic.server.jobs.timeouts import TimeoutPolicy

log = logging.getLogger("photonic.server.jobs")

PENDING_WINDOW = 500
"""Pending jobs one assign pass looks at; the rest wait for the next pass."""
DURATION_SAMPLES = 100


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(eq=False)
class WorkerSession:
    """One open Work stream of one worker."""

    worker_id: str
    capabilities: dict[str, str]
    max_concurrent: int
    slots: int
    running: dict[str, int] = field(default_factory=dict)  # job_id -> attempt
    finishing: dict[str, int] = field(default_factory=dict)
    """Jobs whose executor is done and whose outputs are being uploaded."""
    orders: asyncio.Queue[ServerOrder | None] = field(default_factory=asyncio.Queue)
    assigned_total: int = 0

    def free(self) -> int:
        """Slots for more jobs: the worker's slots less its running jobs, and less its
        finishing ones beyond max_concurrent (uploads overlap the next job's run, but a
        worker whose uploads fall behind is not fed more)."""
        busy = len(self.running) + max(0, len(self.finishing) - self.max_concurrent)
        return max(0, min(self.slots, self.max_concurrent) - busy)

    def holds(self, job_id: str) -> int | None:
        """The attempt of job_id this stream holds, running or finishing."""
        return self.running.get(job_id, self.finishing.get(job_id))

    def drop(self, job_id: str) -> None:
        self.running.pop(job_id, None)
        self.finishing.pop(job_id, None)

    def leases(self) -> list[Lease]:
        return [Lease(j, a) for j, a in (*self.running.items(), *self.finishing.items())]

    def send(self, order: ServerOrder | None) -> None:
        """None ends the stream's writer."""
        self.orders.put_nowait(order)


@dataclass(frozen=True)
class WorkerView:
    """A read-only copy of one Work stream: who, what it can run, how many jobs at once, and
    the jobs it holds (running, or uploading their outputs)."""

    worker_id: str
    capabilities: tuple[str, ...]
    """Tags as the worker states them: `bgremove`, `lightroom=13.2`."""
    slots: int
    running: tuple[str, ...]


Changed = Callable[[Sequence[Job]], Awaitable[None]]
"""Told of every job whose state a dispatch step changed (events, logs, metrics, parents)."""
HeldBy = Callable[[str, Sequence[str]], set[str]]
"""Which of these contents the worker holds (it synced them): the catalog knows."""


class Dispatcher:
    def __init__(self, queue: JobQueue, held_by: HeldBy, timeouts: TimeoutPolicy, *,
                 heartbeat_ms: int, lease_ms: int, changed: Changed,
                 waited: Callable[[float], None] = lambda _s: None,
                 expired: Callable[[Sequence[Job]], None] = lambda _jobs: None) -> None:
        """waited: told, at each lease, how long the job waited to run since it became
        runnable (submitted or handed back): the dispatch latency. expired: told of the
        jobs whose lease expired and that were handed back (or failed, out of attempts)."""
        self._queue = queue
        self._held_by = held_by
        self._timeouts = timeouts
        self.heartbeat_ms = heartbeat_ms
        self.lease_ms = lease_ms
        self._changed = changed
        self._waited = waited
        self._expired = expired
        self._sessions: list[WorkerSession] = []
        self._kick = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._turn = itertools.count()
        self.assign_passes = 0

    # lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Leases held when the server stopped get a fresh lease time: their workers were
        cut off by the restart, not dead, and keep them by reconnecting."""
        extended = await asyncio.to_thread(self._queue.extend_leases, now_ms() + self.lease_ms)
        if extended:
            log.info("leases kept across restart", extra={"jobs": extended})
        self._tasks = [asyncio.create_task(self._assign_loop(), name="jobs-assign"),
                       asyncio.create_task(self._expiry_loop(), name="jobs-expiry")]
        self.kick()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for s in self._sessions:
            s.send(None)

    def kick(self) -> None:
        """Something changed (a job, a worker, a slot): run an assign pass now."""
        self._kick.set()

    @property
    def sessions(self) -> list[WorkerSession]:
        return list(self._sessions)

    def snapshot(self) -> list[WorkerView]:
        """The connected Work streams as they are now, copied: what the topology view shows
        (a reader never holds a live session)."""
        return [WorkerView(s.worker_id, tuple(sorted(
                    f"{k}={v}" if v else k for k, v in s.capabilities.items())),
                           min(s.slots, s.max_concurrent),
                           tuple(sorted({*s.running, *s.finishing})))
                for s in self._sessions]

    # sessions -------------------------------------------------------------------------------

    async def attach(self, worker_id: str, hello: WorkerHello) -> WorkerSession:
        """A worker's stream said hello: its still-current leases are kept (a reconnect), any
        other it claims is refused so it stops that work."""
        concurrent = max(1, min(hello.max_concurrent or 1, 64))
        session = WorkerSession(worker_id, parse_tags(hello.capabilities), concurrent,
                                concurrent)
        session.send(StreamTerms(self.heartbeat_ms, self.lease_ms))
        claimed = [Lease(h.job_id, h.attempt) for h in hello.held]
        kept = set(await asyncio.to_thread(self._queue.renew, worker_id, claimed,
                                           now_ms() + self.lease_ms)) if claimed else set()
        for lease in claimed:
            if lease.job_id in kept:
                session.running[lease.job_id] = lease.attempt
            else:
                session.send(ReportRefused(lease.job_id, "that attempt is no longer yours"))
        for other in self._sessions:  # an older stream of the same worker gives them up
            if other.worker_id == worker_id:
                for job_id in kept:
                    other.drop(job_id)
        self._sessions.append(session)
        self.kick()
        return session

    def update(self, session: WorkerSession, hello: WorkerHello) -> None:
        """A Hello later on the stream: the worker's capabilities changed (a Lightroom plugin
        came or went). Its leases stay as they are; new assignments follow the new tags."""
        session.capabilities = parse_tags(hello.capabilities)
        session.max_concurrent = max(1, min(hello.max_concurrent or 1, 64))
        session.slots = min(session.slots, session.max_concurrent)
        self.kick()

    def detach(self, session: WorkerSession) -> None:
        """The stream ended. Its leases stay until they expire: the worker may reconnect
        and keep them; if it is gone, the expiry loop hands the jobs out again."""
        with contextlib.suppress(ValueError):
            self._sessions.remove(session)
        session.send(None)

    def set_capacity(self, session: WorkerSession, slots: int) -> None:
        session.slots = max(0, min(slots, session.max_concurrent))
        self.kick()

    def executed(self, session: WorkerSession, job_id: str, attempt: int) -> None:
        """The job's executor is done and its outputs travel: its slot runs the next job."""
        if session.running.get(job_id) == attempt:
            del session.running[job_id]
            session.finishing[job_id] = attempt
            self.kick()

    def finished(self, session: WorkerSession, job_id: str) -> None:
        """The session's job ended (done, failed, released, cancelled): its slot is free."""
        session.drop(job_id)
        self.kick()

    def cancel(self, jobs: Sequence[Job]) -> None:
        """Tells the worker running each of these leased jobs to stop it."""
        for job in jobs:
            for s in self._sessions:
                if s.holds(job.job_id) == job.attempts:
                    s.send(CancelOrder(job.job_id, job.attempts))

    async def renew(self, session: WorkerSession) -> None:
        """A heartbeat: every lease of the stream lasts another lease time; a lease that is
        no longer current (expired and handed out again, cancelled) is refused."""
        leases = session.leases()
        if not leases:
            return
        kept = set(await asyncio.to_thread(self._queue.renew, session.worker_id, leases,
                                           now_ms() + self.lease_ms))
        for lease in leases:
            if lease.job_id not in kept:
                session.drop(lease.job_id)
                session.send(ReportRefused(lease.job_id, "the lease ended"))
                self.kick()

    # assigning ------------------------------------------------------------------------------

    async def _assign_loop(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            try:
                await self._assign_pass()
            except Exception:
                log.exception("job assignment pass failed")
                await asyncio.sleep(1.0)
                self._kick.set()

    async def _assign_pass(self) -> None:
        self.assign_passes += 1
        if not any(s.free() for s in self._sessions):
            return
        pending = await asyncio.to_thread(self._queue.pending, PENDING_WINDOW)
        if not pending:
            return
        holdings = await self._holdings(pending)
        durations: dict[str, list[int]] = {}
        for job in _fair_order(pending):
            free = [s for s in self._sessions
                    if s.free() and satisfies(s.capabilities, job.kind, job.requires)]
            if not free:
                if not any(s.free() for s in self._sessions):
                    return
                continue
            session = self._choose(job, free, holdings)
            if job.kind not in durations:
                durations[job.kind] = await asyncio.to_thread(
                    self._queue.durations_ms, job.kind, DURATION_SAMPLES)
            await self._lease(job, session, durations[job.kind])

    async def _holdings(self, pending: Sequence[Job]) -> dict[str, set[str]]:
        """Per worker, which pending inputs it holds (one catalog query per worker)."""
        shas = list({j.input_sha256[0] for j in pending if j.input_sha256})
        workers = {s.worker_id for s in self._sessions if s.free()}
        if not shas or len(workers) < 2:
            return {}
        return {w: await asyncio.to_thread(self._held_by, w, shas) for w in workers}

    def _choose(self, job: Job, free: list[WorkerSession],
                holdings: dict[str, set[str]]) -> WorkerSession:
        """A worker holding the input first, then the one with the most free slots, then
        the one that was given work longest ago."""
        sha = job.input_sha256[0] if job.input_sha256 else ""
        return min(free, key=lambda s: (sha not in holdings.get(s.worker_id, ()),
                                        -s.free(), s.assigned_total))

    async def _lease(self, job: Job, session: WorkerSession, durations: list[int]) -> None:
        pixels = await asyncio.to_thread(self._queue.input_pixels, job.job_id)
        timeout = self._timeouts.timeout_ms(job.input_size, pixels, durations)
        lease_until = now_ms() + self.lease_ms
        leased = await asyncio.to_thread(self._queue.lease, job.job_id, session.worker_id,
                                         lease_until, timeout, now_ms())
        if leased is None:  # cancelled or taken meanwhile
            return
        if session not in self._sessions:  # the stream ended during the lease
            await asyncio.to_thread(self._queue.release, Lease(job.job_id, leased.attempts),
                                    "the worker's stream ended", now_ms())
            return
        session.running[job.job_id] = leased.attempts
        session.assigned_total = next(self._turn)
        session.send(Assignment(leased, lease_until))
        self._waited(max(0, leased.started_unix_ms - job.updated_unix_ms) / 1000)
        await self._changed([leased])

    # expiry ---------------------------------------------------------------------------------

    async def _expiry_loop(self) -> None:
        interval_s = max(0.1, min(1.0, self.lease_ms / 1000 / 30))
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self._expire_once()
            except Exception:
                log.exception("lease expiry pass failed")

    async def _expire_once(self) -> None:
        now = now_ms()
        overdue = await asyncio.to_thread(self._queue.overdue, now)
        for job in overdue:
            ended = await asyncio.to_thread(
                self._queue.fail_attempt, Lease(job.job_id, job.attempts),
                f"timed out after {job.timeout_ms / 1000:.0f} s", True, now)
            self.cancel([job])
            self._forget(job.job_id)
            if ended is not None:
                await self._changed([ended])
        expired = await asyncio.to_thread(self._queue.expired, now)
        for job in expired:
            self._forget(job.job_id)
        if expired:
            self._expired(expired)
            await self._changed(expired)
        if overdue or expired:
            self.kick()

    def _forget(self, job_id: str) -> None:
        for s in self._sessions:
            s.drop(job_id)


def _fair_order(pending: Sequence[Job]) -> list[Job]:
    """Priority first; within one priority the submitters take turns, each in its own
    submission order, so one person's 10,000-photo batch does not starve another's one."""
    by_priority: dict[int, dict[str, list[Job]]] = defaultdict(lambda: defaultdict(list))
    for job in pending:
        by_priority[job.priority][job.submitter].append(job)
    ordered: list[Job] = []
    for priority in sorted(by_priority, reverse=True):
        queues = list(by_priority[priority].values())
        for round_ in itertools.zip_longest(*queues):
            ordered += [j for j in round_ if j is not None]
    return ordered
