"""One attempt of one job, from its assignment to its last report: obtain the input, run the
executor, upload each output, report Done; or Failed, Cancelled, Released, or nothing at all
when the server refused the attempt as stale. Its temporary folder goes in every case."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath

from photonic import errors
from photonic.agent.executors.base import (
    Execution,
    ExecutorError,
    ExecutorInfo,
    HandBack,
    JobTicket,
)
from photonic.agent.work.inputs import InputMismatch, InputStore
from photonic.agent.work.metrics import WorkerMetrics
from photonic.agent.work.seams import ExecutorPool, JobsRpc
from photonic.jobs_model import (
    Assignment,
    Job,
    JobOutput,
    WorkCancelled,
    WorkDone,
    WorkerReport,
    WorkFailed,
    WorkProgress,
    WorkReleased,
)
from photonic.logfmt import event
from photonic.media.hashing import sha256_file

log = logging.getLogger("photonic.agent.work")

DEFAULT_TIMEOUT_S = 600.0
"""A job's time limit when the server sent none."""
SHUTDOWN_REASON = "worker shutting down"

Send = Callable[[WorkerReport], Awaitable[None]]


class StopReason(StrEnum):
    """Why a running attempt was stopped from outside, which decides its last report."""

    CANCELLED = "cancelled"  # a CancelOrder: report Cancelled
    SHUTDOWN = "shutdown"    # the agent stops: report Released, the job goes back at once
    REFUSED = "refused"      # the server refused the attempt (stale): report nothing


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RELEASED = "released"
    DROPPED = "dropped"


@dataclass(frozen=True)
class RunnerDeps:
    """What every attempt works with; the service builds it once."""

    pool: ExecutorPool
    inputs: InputStore
    executors: Mapping[str, ExecutorInfo]
    jobs_dir: Path
    agent_id: str
    metrics: WorkerMetrics
    clock: Callable[[], float] = time.monotonic


class JobRun:
    """One attempt; the service runs run() as a task and stops it with stop()."""

    def __init__(self, assignment: Assignment, rpc: JobsRpc, send: Send,
                 deps: RunnerDeps, executed: Callable[[JobRun], None] = lambda _run: None
                 ) -> None:
        """executed: told when the executor is done and only the outputs' upload is left
        (the session may then give the job's slot to the next job)."""
        self.job: Job = assignment.job
        self.attempt = assignment.job.attempts
        self._rpc = rpc
        self._send = send
        self._deps = deps
        self._executed = executed
        self.slot_returned = False
        """Set by the session when it gave this job's slot back before the job ended."""
        self.executed = False
        """Set by the session when the executor is done and only the upload is left."""
        self.reported = False
        """Set by the session as the attempt's final report leaves."""
        self._stop_reason: StopReason | None = None
        self.task: asyncio.Task[Outcome] | None = None

    def start(self) -> asyncio.Task[Outcome]:
        self.task = asyncio.create_task(self.run(), name=f"job {self.job.job_id}")
        return self.task

    def stop(self, reason: StopReason) -> None:
        """Cancels the attempt (the pool kills its child) once; later reasons are ignored, so
        a second stop cannot interrupt the report of the first."""
        if self._stop_reason is not None:
            return
        self._stop_reason = reason
        if self.task is not None:
            self.task.cancel()

    async def run(self) -> Outcome:
        """The attempt's outcome, once its last report is sent (send never raises)."""
        started = self._deps.clock()
        work_dir: Path | None = None
        try:
            work_dir = await asyncio.to_thread(self._make_work_dir)
            outcome = await self._attempt(work_dir, started)
        except asyncio.CancelledError:
            if self._stop_reason is None:
                raise  # not ours: the whole service is being torn down
            outcome = await self._report_stop(self._stop_reason)
        except Exception as exc:  # a bug here must still end the lease, not abandon it
            log.exception("event=job_crashed job=%s", self.job.job_id)
            outcome = await self._fail(f"the worker failed unexpectedly: {exc}",
                                       retryable=True)
        finally:
            if work_dir is not None:
                await asyncio.to_thread(shutil.rmtree, work_dir, True)
        self._deps.metrics.jobs.labels(self.job.kind, outcome.value).inc()
        self._deps.metrics.job_duration.labels(self.job.kind).observe(
            self._deps.clock() - started)
        event(log, "job_ended", job=self.job.job_id, attempt=self.attempt, kind=self.job.kind,
              outcome=outcome.value)
        return outcome

    async def _attempt(self, work_dir: Path, started: float) -> Outcome:
        job = self.job
        if len(job.input_sha256) != 1:
            return await self._fail(f"a {job.kind} job takes one input, this one has "
                                    f"{len(job.input_sha256)}", retryable=False)
        sha = job.input_sha256[0]
        await self._send(WorkProgress(job.job_id, self.attempt, 0.0, "reading input"))
        try:
            input_path = await self._deps.inputs.obtain(sha, job.job_id, self.attempt,
                                                        self._rpc.fetch_blob)
        except InputMismatch as exc:
            return await self._fail(str(exc), retryable=True)
        except errors.PhotonicError as exc:
            return await self._fail(f"cannot obtain input {sha[:12]}: {exc}", retryable=True)
        try:
            return await self._process(input_path, work_dir, started)
        finally:
            self._deps.inputs.release(sha)
            await self._deps.inputs.prune()

    async def _process(self, input_path: Path, work_dir: Path, started: float) -> Outcome:
        job = self.job
        await self._send(WorkProgress(job.job_id, self.attempt, 0.1, "processing",
                                      processing=True))
        timeout_s = job.timeout_ms / 1000 if job.timeout_ms > 0 else DEFAULT_TIMEOUT_S
        named = await asyncio.to_thread(self._named_input, input_path, work_dir)
        reports: list[asyncio.Task[None]] = []
        ticket = JobTicket(job.job_id, self.attempt, lambda fraction, message: reports.append(
            asyncio.ensure_future(self._progress(fraction, message))))
        try:
            try:
                execution = await self._deps.pool.run(job.kind, named, work_dir / "out",
                                                      job.params, timeout_s=timeout_s,
                                                      ticket=ticket)
            finally:
                # Progress goes out before the attempt's next report, in order: a Failed or
                # Released sent first would reach the server before the progress it ends.
                await asyncio.gather(*reports, return_exceptions=True)
        except ExecutorError as exc:
            return await self._fail(str(exc), retryable=exc.retryable)
        except HandBack as exc:
            await self._send(WorkReleased(job.job_id, self.attempt, str(exc)))
            return Outcome.RELEASED
        if not await self._deps.inputs.unchanged(input_path):
            return await self._fail("the local copy of the input changed while it was "
                                    "processed; another attempt reads it again",
                                    retryable=True)
        duration_ms = round((self._deps.clock() - started) * 1000)
        # The slot is given back here before the server hears `finishing`: told first, it
        # may assign the next job before this run returned its slot, which the worker then
        # hands back as "no free slot" (each bounce spends one of the job's attempts).
        self._executed(self)
        await self._send(WorkProgress(job.job_id, self.attempt, 0.9, "uploading outputs",
                                      processing=True, finishing=True))
        try:
            outputs = await self._upload(execution, duration_ms)
        except errors.PhotonicError as exc:
            return await self._fail(f"uploading the outputs failed: {exc}", retryable=True)
        await self._send(WorkDone(job.job_id, self.attempt, outputs, duration_ms))
        return Outcome.COMPLETED

    async def _upload(self, execution: Execution, duration_ms: int) -> tuple[JobOutput, ...]:
        """Hashes (in a thread) and uploads each output, so Done names only stored objects."""
        recipe = self._recipe(execution, duration_ms)
        outputs: list[JobOutput] = []
        for output in execution.outputs:
            sha, size = await asyncio.to_thread(sha256_file, output.path)
            await self._rpc.upload_result(self.job.job_id, self.attempt, output.path, sha,
                                          output.name)
            outputs.append(JobOutput(sha, output.name, size, recipe=recipe))
        return tuple(outputs)

    async def _progress(self, fraction: float, message: str) -> None:
        """An executor's progress (the Lightroom plugin's per rendition), which renews the
        lease: the input was in hand, so the job is PROCESSING, between 0.1 and 0.9."""
        await self._send(WorkProgress(self.job.job_id, self.attempt,
                                      0.1 + 0.8 * max(0.0, min(1.0, fraction)), message[:200],
                                      processing=True))

    def _recipe(self, execution: Execution, duration_ms: int) -> dict[str, object]:
        """How every output was made, enough to tell whether two outputs are comparable."""
        info = self._deps.executors.get(self.job.kind)
        return {
            "executor": self.job.kind,
            "executor_version": info.version if info else "",
            "model": info.model_name if info else "",
            "model_sha256": info.model_sha256 if info else "",
            "params": dict(self.job.params),
            "worker": self._deps.agent_id,
            "duration_ms": duration_ms,
            "details": dict(execution.details),
        }

    async def _fail(self, error: str, *, retryable: bool) -> Outcome:
        await self._send(WorkFailed(self.job.job_id, self.attempt, error, retryable))
        return Outcome.FAILED

    async def _report_stop(self, reason: StopReason) -> Outcome:
        job_id, attempt = self.job.job_id, self.attempt
        if reason is StopReason.CANCELLED:
            await self._send(WorkCancelled(job_id, attempt))
            return Outcome.CANCELLED
        if reason is StopReason.SHUTDOWN:
            await self._send(WorkReleased(job_id, attempt, SHUTDOWN_REASON))
            return Outcome.RELEASED
        return Outcome.DROPPED

    def _named_input(self, input_path: Path, work_dir: Path) -> Path:
        """The input under its library name (a symlink in the attempt's folder): executors
        name their outputs after the file they read, and a fetched input's cached file is
        named by its hash."""
        name = PurePosixPath(self.job.input_path).name
        if not name or name.startswith(".") or name == input_path.name:
            return input_path
        link = work_dir / "in" / name
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(input_path.resolve())
        return link

    def _make_work_dir(self) -> Path:
        self._deps.jobs_dir.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.job.job_id)[:64]
        work_dir = Path(tempfile.mkdtemp(prefix=f"{safe}-{self.attempt}-",
                                         dir=self._deps.jobs_dir))
        (work_dir / "out").mkdir()
        return work_dir
