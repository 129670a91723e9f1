"""The worker's side of one server's Work stream, kept open across reconnects: it says Hello
(with the jobs it still holds from that server), beats, announces its capacity, starts the
jobs it is assigned and stops those the server cancels or refuses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from photonic import errors
from photonic.agent.backoff import Backoff
from photonic.agent.work.job_runner import SHUTDOWN_REASON, JobRun, RunnerDeps, StopReason
from photonic.agent.work.seams import JobsRpc, WorkChannel
from photonic.agent.work.slots import SlotBook
from photonic.jobs_model import (
    Assignment,
    CancelOrder,
    Held,
    ReportRefused,
    ServerOrder,
    StreamTerms,
    WorkCancelled,
    WorkCapacity,
    WorkDone,
    WorkerHello,
    WorkerReport,
    WorkFailed,
    WorkHeartbeat,
    WorkReleased,
)
from photonic.logfmt import event

log = logging.getLogger("photonic.agent.work")

NO_SLOT_REASON = "no free slot"
DEFAULT_HEARTBEAT_S = 5.0
HANG_UP_WAIT_S = 5.0
"""After the worker half-closes its stream, how long the server has to end it."""
_FINAL = (WorkDone, WorkFailed, WorkReleased, WorkCancelled)

HelloFor = Callable[[tuple[Held, ...]], WorkerHello]


class EndpointSession:
    """One endpoint's stream and the jobs it assigned. A job's reports go to whichever stream
    of that endpoint is open; a final report sent while none is open waits for the next one
    (its job is declared held in that Hello, so the server keeps the lease meanwhile)."""

    def __init__(self, rpc: JobsRpc, hello: HelloFor, slots: SlotBook, deps: RunnerDeps,
                 backoff: Backoff) -> None:
        self.rpc = rpc
        self.endpoint = rpc.endpoint
        self.jobs: dict[str, JobRun] = {}
        self._hello = hello
        self._slots = slots
        self._deps = deps
        self._backoff = backoff
        self._stream: WorkChannel | None = None
        self._unsent: list[WorkerReport] = []
        self._capacity_sent = slots.max_concurrent
        self._capacity_moved = asyncio.Event()
        self.connected = asyncio.Event()
        """Set while a stream is open and its Hello sent (tests and status read it)."""
        slots.listen(self._capacity_moved.set)

    async def run(self, closing: asyncio.Event) -> None:
        """Serves the stream, reconnecting with backoff, until closing is set; then
        half-closes it and gives the server HANG_UP_WAIT_S to end it."""
        while not closing.is_set():
            serve = asyncio.create_task(self._serve())
            closed = asyncio.create_task(closing.wait())
            await asyncio.wait({serve, closed}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            if closing.is_set():
                await self._hang_up(serve)
                return
            self._log_cut(serve)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), self._backoff.next_delay_s())

    async def rehello(self, hello: HelloFor) -> None:
        """The executors changed (a Lightroom plugin came or went): the stream says Hello
        again with the new capabilities, and every later reconnect uses them."""
        self._hello = hello
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(errors.PhotonicError):
                await stream.send(hello(self._held()))

    async def send(self, report: WorkerReport) -> None:
        """Writes report on the open stream. Never raises: progress with no stream is dropped
        (a beat renews the lease anyway), a final report is kept for the next stream. The
        job's slot is free before its final report leaves (see _free_slot_of)."""
        if isinstance(report, _FINAL):
            self._free_slot_of(report)
        stream = self._stream
        if stream is not None:
            try:
                await stream.send(report)
                return
            except errors.PhotonicError as exc:
                event(log, "work_send_failed", logging.WARNING, endpoint=self.endpoint,
                      error=str(exc))
        if isinstance(report, _FINAL):
            self._unsent.append(report)

    def stop_jobs(self, reason: StopReason) -> None:
        for run in list(self.jobs.values()):
            run.stop(reason)

    async def _serve(self) -> None:
        stream = self.rpc.open_work()
        helpers: list[asyncio.Task[None]] = []
        try:
            await stream.send(self._hello(self._held()))
            self._stream = stream
            self._capacity_sent = self._slots.max_concurrent
            self._capacity_moved.set()
            helpers.append(asyncio.create_task(self._announce_capacity(stream)))
            await self._flush_unsent(stream)
            self.connected.set()
            async for order in stream.orders():
                self._backoff.reset()
                await self._on_order(order, stream, helpers)
            raise errors.Transient("the server ended the Work stream")
        finally:
            self.connected.clear()
            self._stream = None
            for task in helpers:
                task.cancel()
            stream.cancel()

    def _held(self) -> tuple[Held, ...]:
        running = [Held(run.job.job_id, run.attempt) for run in self.jobs.values()]
        finished = [Held(r.job_id, r.attempt) for r in self._unsent if isinstance(r, _FINAL)]
        return tuple(running + finished)

    async def _flush_unsent(self, stream: WorkChannel) -> None:
        while self._unsent:
            await stream.send(self._unsent[0])
            self._unsent.pop(0)

    async def _on_order(self, order: ServerOrder, stream: WorkChannel,
                        helpers: list[asyncio.Task[None]]) -> None:
        if isinstance(order, StreamTerms):
            helpers.append(asyncio.create_task(self._beat(stream, order.heartbeat_ms)))
        elif isinstance(order, Assignment):
            await self._assigned(order, stream)
        elif isinstance(order, CancelOrder):
            await self._cancel(order, stream)
        elif isinstance(order, ReportRefused):
            self._refused(order)

    async def _assigned(self, order: Assignment, stream: WorkChannel) -> None:
        job = order.job
        running = self.jobs.get(job.job_id)
        if running is not None and running.attempt == job.attempts:
            return  # the same lease again (a reconnect): it is already running
        if not self._slots.take(self.endpoint):
            reason = NO_SLOT_REASON if self._slots.accepting else SHUTDOWN_REASON
            await stream.send(WorkReleased(job.job_id, job.attempts, reason))
            return
        if running is not None:
            running.stop(StopReason.REFUSED)  # a newer attempt supersedes the one here
        run = JobRun(order, self.rpc, self.send, self._deps, self._executed)
        self.jobs[job.job_id] = run
        self._deps.metrics.running_jobs.set(self._slots.running)
        run.start().add_done_callback(lambda _task: self._ended(run))
        event(log, "job_started", endpoint=self.endpoint, job=job.job_id,
              attempt=job.attempts, kind=job.kind)

    def _executed(self, run: JobRun) -> None:
        """The run's executor is done: its slot goes to the next job while its outputs
        upload (it said `finishing`), unless max_concurrent uploads already run here, so
        uploads that fall behind hold the executors back instead of piling up."""
        run.executed = True
        self._free_upload_slots()

    def _free_upload_slots(self) -> None:
        """Gives back the slots of executed runs while fewer than max_concurrent uploads go
        on, oldest first: the dispatcher's rule (a worker's finishing jobs beyond
        max_concurrent keep their slots), so both sides count the same free slots. Called
        whenever an upload starts or ends; a run that said its last word uploads nothing."""
        uploading = sum(1 for r in self.jobs.values() if r.slot_returned and not r.reported)
        for run in self.jobs.values():
            if uploading >= self._slots.max_concurrent:
                return
            if run.executed and not run.slot_returned and not run.reported:
                self._return_slot(run)
                uploading += 1

    def _free_slot_of(self, report: WorkDone | WorkFailed | WorkReleased | WorkCancelled
                      ) -> None:
        """The attempt's last word is about to leave: its slot is free now, not once the run
        has also cleaned up after itself (its folder, its input), and so is the slot of an
        executed run that waited for this upload to end. The server may assign the next job
        as soon as it reads the report; found with no slot, that job would be handed back as
        "no free slot", costing it an attempt and a round trip."""
        run = self.jobs.get(report.job_id)
        if run is not None and run.attempt == report.attempt:
            run.reported = True
            self._return_slot(run)
            self._free_upload_slots()

    def _return_slot(self, run: JobRun) -> None:
        if not run.slot_returned:
            run.slot_returned = True
            self._slots.give_back(self.endpoint)
            self._deps.metrics.running_jobs.set(self._slots.running)

    def _ended(self, run: JobRun) -> None:
        if self.jobs.get(run.job.job_id) is run:
            del self.jobs[run.job.job_id]
        self._return_slot(run)
        self._free_upload_slots()  # a run that ended unreported (refused) uploads no more

    async def _cancel(self, order: CancelOrder, stream: WorkChannel) -> None:
        run = self.jobs.get(order.job_id)
        if run is not None and order.attempt in (0, run.attempt):
            run.stop(StopReason.CANCELLED)
        else:  # nothing of it runs here: confirm, so the server need not wait out its grace
            await stream.send(WorkCancelled(order.job_id, order.attempt))

    def _refused(self, order: ReportRefused) -> None:
        """A stale attempt: its job is someone else's now, so it stops without a word."""
        event(log, "report_refused", endpoint=self.endpoint, job=order.job_id,
              reason=order.reason)
        run = self.jobs.get(order.job_id)
        if run is not None:
            run.stop(StopReason.REFUSED)
        self._unsent = [r for r in self._unsent
                        if not (isinstance(r, _FINAL) and r.job_id == order.job_id)]

    async def _beat(self, stream: WorkChannel, heartbeat_ms: int) -> None:
        """Renews every lease of the stream; a failed write is the reader's to notice."""
        interval_s = heartbeat_ms / 1000 if heartbeat_ms > 0 else DEFAULT_HEARTBEAT_S
        with contextlib.suppress(errors.PhotonicError):
            while True:
                await asyncio.sleep(interval_s)
                await stream.send(WorkHeartbeat())

    async def _announce_capacity(self, stream: WorkChannel) -> None:
        """Sends Capacity whenever this stream's figure moved since it was last said; the
        latest figure is sent, so a burst of changes costs one message."""
        with contextlib.suppress(errors.PhotonicError):
            while True:
                await self._capacity_moved.wait()
                self._capacity_moved.clear()
                slots = self._slots.slots_for(self.endpoint)
                if slots != self._capacity_sent:
                    await stream.send(WorkCapacity(slots))
                    self._capacity_sent = slots

    async def _hang_up(self, serve: asyncio.Task[None]) -> None:
        stream = self._stream
        if stream is not None:
            await stream.done_writing()
        await asyncio.wait({serve}, timeout=HANG_UP_WAIT_S)
        serve.cancel()
        await asyncio.wait({serve})
        if not serve.cancelled():
            serve.exception()  # retrieved: a cut while hanging up is no news
        if self._unsent:
            event(log, "work_reports_unsent", logging.WARNING, endpoint=self.endpoint,
                  count=len(self._unsent))

    def _log_cut(self, serve: asyncio.Task[None]) -> None:
        exc = serve.exception()
        if exc is not None and not isinstance(exc, errors.PhotonicError):
            log.error("event=work_stream_crashed endpoint=%s", self.endpoint, exc_info=exc)
            return
        event(log, "work_stream_cut", logging.WARNING, endpoint=self.endpoint,
              error=str(exc))
