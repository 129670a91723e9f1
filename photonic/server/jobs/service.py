"""The jobs application layer: what the gRPC servicer (and the coming dashboard) call to
submit, read, cancel and run jobs. Every state change goes through `_changed`, which makes
it an event on StreamEvents, a log line and a metric, and moves a batch parent along; a
worker's progress reports become throttled `job_progress` events for the web."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from photonic import errors
from photonic.jobs_model import (
    BATCH_KIND,
    Job,
    JobFilter,
    JobOutput,
    JobRequest,
    JobState,
    ReportRefused,
    WorkCancelled,
    WorkCapacity,
    WorkDone,
    WorkerHello,
    WorkerReport,
    WorkFailed,
    WorkHeartbeat,
    WorkProgress,
    WorkReleased,
)
from photonic.logfmt import event
from photonic.server.events import EventHub, ServerEvent
from photonic.server.jobs.dispatch import Dispatcher, WorkerSession, now_ms
from photonic.server.jobs.inputs import InputResolver, JobInput
from photonic.server.jobs.kinds import job_kind
from photonic.server.jobs.progress_events import ProgressThrottle, progress_event
from photonic.server.jobs.queue import JobQueue, Lease, NewJob
from photonic.server.jobs.results import ResultHeader, ResultStore
from photonic.server.metrics import ServerMetrics

log = logging.getLogger("photonic.server.jobs")

Audit = Callable[[str, str, str, str, str], Awaitable[None]]


def new_job_id() -> str:
    return uuid.uuid4().hex[:20]


class JobsService:
    def __init__(self, queue: JobQueue, dispatcher_of: Callable[[JobsService], Dispatcher],
                 inputs: InputResolver, results: ResultStore, events: EventHub,
                 metrics: ServerMetrics, audit: Audit, *, max_attempts: int,
                 cancel_grace_s: float) -> None:
        self._queue = queue
        self._inputs = inputs
        self.results = results
        self._events = events
        self._metrics = metrics
        self._audit = audit
        self._max_attempts = max_attempts
        self._cancel_grace_s = cancel_grace_s
        self.dispatcher = dispatcher_of(self)
        self._timers: set[asyncio.Task[None]] = set()
        self._progress = ProgressThrottle(lambda ev: events.publish(ev, ring_only=True))
        self._processing: set[str] = set()
        """Jobs whose PROCESSING state was announced: a worker's later progress reports
        (the Lightroom plugin's per rendition) are progress events, not state changes."""

    async def start(self) -> None:
        await self.dispatcher.start()

    async def stop(self) -> None:
        for t in self._timers:
            t.cancel()
        self._progress.close()
        await self.dispatcher.stop()

    # submitting and reading -----------------------------------------------------------------

    async def submit(self, submitter: str, request: JobRequest) -> Job:
        kind = job_kind(request.kind)
        kind.check(request.params)
        inputs = await asyncio.to_thread(self._inputs.resolve, request)
        job = await self.enqueue(submitter, request, inputs)
        await self._audit(submitter, "SubmitJob", job.job_id, "ok",
                          f"{request.kind} x{len(inputs)}")
        return job

    async def enqueue(self, submitter: str, request: JobRequest, inputs: Sequence[JobInput],
                      batch: bool = False) -> Job:
        """One job for one photo; a parent with one child per photo for several (or when
        batch is asked for, as for a ZIP)."""
        params = json.dumps(dict(request.params), sort_keys=True)

        def child(i: JobInput, parent: str = "") -> NewJob:
            return NewJob(new_job_id(), request.kind, submitter, self._max_attempts,
                          parent_id=parent, input_sha256=i.sha256, input_path=i.library_path,
                          input_size=i.size, input_pixels=i.pixels, params_json=params,
                          requires=request.requires, priority=request.priority)

        if len(inputs) == 1 and not batch:
            rows = [child(inputs[0])]
        else:
            parent = NewJob(new_job_id(), BATCH_KIND, submitter, self._max_attempts,
                            batch_kind=request.kind, params_json=params,
                            requires=request.requires, priority=request.priority)
            rows = [parent, *(child(i, parent.job_id) for i in inputs)]
        await asyncio.to_thread(self._queue.add, rows, now_ms())
        created = await self.get(rows[0].job_id)
        await self._changed([created])
        self.dispatcher.kick()
        return created

    async def get(self, job_id: str) -> Job:
        job = await asyncio.to_thread(self._queue.get, job_id.strip())
        if job is None:
            raise errors.NotFound(f"no job {job_id[:40]!r}")
        return job

    async def find(self, f: JobFilter) -> list[Job]:
        return await asyncio.to_thread(self._queue.find, f)

    async def cancel(self, who: str, job_id: str) -> Job:
        job = await self.get(job_id)
        if not job.state.terminal:
            changed = await asyncio.to_thread(self._queue.request_cancel, job.job_id, now_ms())
            await self._changed([j for j in changed if j.state.terminal])
            leased = [j for j in changed if j.state.leased]
            self.dispatcher.cancel(leased)
            for j in leased:
                self._later(self._cancel_grace_s, self._force_cancel(j))
            await self._settle_parents(changed)
        await self._audit(who, "CancelJob", job.job_id, "ok", job.state.value)
        return await self.get(job.job_id)

    async def _force_cancel(self, job: Job) -> None:
        """The worker did not confirm the cancel within the grace: the job ends anyway, and
        whatever that attempt still sends is refused."""
        ended = await asyncio.to_thread(self._queue.cancelled,
                                        Lease(job.job_id, job.attempts), now_ms())
        if ended is not None:
            for s in self.dispatcher.sessions:
                s.drop(job.job_id)
            await self._changed([ended])
            self.dispatcher.kick()

    def _later(self, delay_s: float, work: Awaitable[None]) -> None:
        async def run() -> None:
            await asyncio.sleep(delay_s)
            await work

        task = asyncio.create_task(run())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    # the worker side ------------------------------------------------------------------------

    async def worker_hello(self, worker_id: str, hello: WorkerHello) -> WorkerSession:
        session = await self.dispatcher.attach(worker_id, hello)
        self._metrics.workers_connected.set(len(self.dispatcher.sessions))
        event(log, "worker_connected", worker=worker_id,
              capabilities=",".join(hello.capabilities), max_concurrent=hello.max_concurrent,
              kept=len(session.running))
        return session

    def worker_gone(self, session: WorkerSession) -> None:
        self.dispatcher.detach(session)
        self._metrics.workers_connected.set(len(self.dispatcher.sessions))
        event(log, "worker_disconnected", worker=session.worker_id,
              leased=len(session.running))

    async def worker_report(self, session: WorkerSession, report: WorkerReport) -> None:
        if isinstance(report, WorkHeartbeat):
            await self.dispatcher.renew(session)
        elif isinstance(report, WorkerHello):
            self.dispatcher.update(session, report)
            event(log, "worker_capabilities", worker=session.worker_id,
                  capabilities=",".join(report.capabilities))
        elif isinstance(report, WorkCapacity):
            self.dispatcher.set_capacity(session, report.slots)
        elif isinstance(report, WorkProgress):
            job = await asyncio.to_thread(
                self._queue.progress, Lease(report.job_id, report.attempt), report.fraction,
                report.message, report.processing, now_ms() + self.dispatcher.lease_ms,
                now_ms())
            if job is None:
                self._refuse(session, report.job_id, "that attempt is no longer current")
                return
            self._progress.offer(progress_event(job, session.worker_id, report.fraction,
                                                report.message))
            if report.finishing:
                self.dispatcher.executed(session, report.job_id, report.attempt)
            elif report.processing and job.job_id not in self._processing:
                await self._changed([job])
        elif isinstance(report, WorkDone):
            await self._done(session, report)
        elif isinstance(report, WorkFailed | WorkReleased | WorkCancelled):
            await self._ended(session, report)

    async def _done(self, session: WorkerSession, report: WorkDone) -> None:
        lease = Lease(report.job_id, report.attempt)
        job = await asyncio.to_thread(self._queue.get, report.job_id)
        if job is None or job.attempts != report.attempt or not job.state.leased:
            self._refuse(session, report.job_id, "that attempt is no longer current")
            return
        uploaded = await asyncio.to_thread(self._queue.uploads, lease)
        missing = [o.sha256[:12] for o in report.outputs if o.sha256 not in uploaded]
        if not report.outputs or missing:
            why = (f"outputs not uploaded: {', '.join(missing)}" if missing
                   else "the job reported no output")
            await self._ended(session, WorkFailed(report.job_id, report.attempt, why, True))
            return
        outputs = [JobOutput(o.sha256, o.name, uploaded[o.sha256],
                             recipe={**dict(o.recipe), "worker_id": session.worker_id})
                   for o in report.outputs]
        published = await self.results.publish(job, outputs)
        done = await asyncio.to_thread(self._queue.complete, lease, published,
                                       report.duration_ms, now_ms())
        self.dispatcher.finished(session, report.job_id)
        if done is None:
            self._refuse(session, report.job_id, "that attempt is no longer current")
            return
        self._metrics.job_duration.labels(done.kind).observe(
            max(0, done.finished_unix_ms - done.started_unix_ms) / 1000)
        await self._changed([done])

    async def _ended(self, session: WorkerSession,
                     report: WorkFailed | WorkReleased | WorkCancelled) -> None:
        lease = Lease(report.job_id, report.attempt)
        if isinstance(report, WorkFailed):
            job = await asyncio.to_thread(self._queue.fail_attempt, lease, report.error,
                                          report.retryable, now_ms())
        elif isinstance(report, WorkReleased):
            job = await asyncio.to_thread(self._queue.release, lease, report.reason, now_ms())
        else:
            job = await asyncio.to_thread(self._queue.cancelled, lease, now_ms())
        self.dispatcher.finished(session, report.job_id)
        if job is None:
            self._refuse(session, report.job_id, "that attempt is no longer current")
            return
        await self._changed([job])

    def _refuse(self, session: WorkerSession, job_id: str, why: str) -> None:
        session.drop(job_id)
        session.send(ReportRefused(job_id, why))
        event(log, "job_report_refused", logging.WARNING, worker=session.worker_id,
              job=job_id, reason=why)

    async def upload_result(self, worker_id: str, header: ResultHeader, first: bytes,
                            first_offset: int, rest: AsyncIterator[tuple[int, bytes]]) -> int:
        """Stores one output of a leased attempt; refused for any other attempt."""
        self.results.check_header(header)
        await self._require_lease(worker_id, header.job_id, header.attempt)
        await self.results.receive(header, first, first_offset, rest)
        self._metrics.result_bytes_received.inc(header.size)
        if not await asyncio.to_thread(self._queue.record_upload,
                                       Lease(header.job_id, header.attempt), header.sha256,
                                       header.size):
            raise errors.AuthError("that attempt is no longer current; its output is refused")
        return header.size

    async def _require_lease(self, worker_id: str, job_id: str, attempt: int) -> Job:
        job = await asyncio.to_thread(self._queue.get, job_id)
        if (job is None or job.worker_id != worker_id or job.attempts != attempt
                or not job.state.leased):
            raise errors.AuthError(f"job {job_id[:40]!r} attempt {attempt} is not leased to "
                                   f"{worker_id!r}")
        return job

    async def fetch(self, caller: str, admin: bool, sha256: str, offset: int, job_id: str,
                    attempt: int) -> AsyncIterator[tuple[int, bytes, int]]:
        """A stored object for a worker whose leased job reads it (counted as input sent to
        workers), or, named without a job, for an admin (a download of outputs)."""
        for_job = bool(job_id) or not admin
        if for_job:
            job = await self._require_lease(caller, job_id, attempt)
            if sha256 not in job.input_sha256:
                raise errors.AuthError("that object is not an input of the job")
        async for chunk in self.results.read(sha256, offset):
            if for_job:
                self._metrics.blob_bytes_sent.inc(len(chunk[1]))
            yield chunk

    # every state change ---------------------------------------------------------------------

    async def changed(self, jobs: Sequence[Job]) -> None:
        """The dispatcher's report of the state changes it made."""
        await self._changed(jobs)

    async def _changed(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            self._progress.forget(job.job_id)
            if job.state is JobState.PROCESSING:
                self._processing.add(job.job_id)
            else:
                self._processing.discard(job.job_id)
            self._metrics.job_transitions.labels(job.kind, job.state.value).inc()
            self._events.publish(ServerEvent(
                "job", job.worker_id or job.submitter, sha256=job.input_sha256[0]
                if job.input_sha256 else "", detail=job.error, job_id=job.job_id,
                job_state=job.state.value))
            event(log, "job_state", job=job.job_id, kind=job.kind, state=job.state.value,
                  worker=job.worker_id, attempt=job.attempts, parent=job.parent_id,
                  error=job.error)
        await self._settle_parents(jobs)

    async def _settle_parents(self, jobs: Sequence[Job]) -> None:
        for parent_id in {j.parent_id for j in jobs if j.parent_id}:
            parent = await asyncio.to_thread(self._queue.settle_parent, parent_id, now_ms())
            if parent is not None:
                await self._changed([parent])
