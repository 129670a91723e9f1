"""The only translator between the jobs domain types (jobs_model) and PhotonicJobs messages."""

from __future__ import annotations

import json
from collections.abc import Mapping

from photonic import errors
from photonic.jobs_model import (
    Assignment,
    BatchCounts,
    CancelOrder,
    Held,
    Job,
    JobFilter,
    JobId,
    JobOutput,
    JobRequest,
    JobState,
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
    WorkProgress,
    WorkReleased,
)
from photonic.v1 import jobs_pb2

MAX_PARAMS_JSON_CHARS = 16 * 1024

_STATE_TO_WIRE: dict[JobState, jobs_pb2.JobState.ValueType] = {
    JobState.PENDING: jobs_pb2.JOB_STATE_PENDING,
    JobState.READING: jobs_pb2.JOB_STATE_READING,
    JobState.PROCESSING: jobs_pb2.JOB_STATE_PROCESSING,
    JobState.COMPLETED: jobs_pb2.JOB_STATE_COMPLETED,
    JobState.FAILED: jobs_pb2.JOB_STATE_FAILED,
    JobState.CANCELLED: jobs_pb2.JOB_STATE_CANCELLED,
}
_STATE_FROM_WIRE: dict[int, JobState] = {int(v): k for k, v in _STATE_TO_WIRE.items()}


def state_to_wire(state: JobState | None) -> jobs_pb2.JobState.ValueType:
    return jobs_pb2.JOB_STATE_UNSPECIFIED if state is None else _STATE_TO_WIRE[state]


def state_from_wire(value: int) -> JobState | None:
    return _STATE_FROM_WIRE.get(int(value))


def params_from_json(text: str) -> dict[str, object]:
    """A job's parameters: a JSON object, or nothing at all."""
    if not text.strip():
        return {}
    if len(text) > MAX_PARAMS_JSON_CHARS:
        raise errors.InvalidInput(f"params_json is longer than {MAX_PARAMS_JSON_CHARS} "
                                  "characters")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.InvalidInput(f"params_json is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise errors.InvalidInput("params_json must be a JSON object")
    return value


def _recipe_from_json(text: str) -> dict[str, object]:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def output_to_wire(o: JobOutput) -> jobs_pb2.JobOutput:
    return jobs_pb2.JobOutput(sha256=o.sha256, name=o.name, size=o.size,
                              library_path=o.library_path,
                              recipe_json=json.dumps(dict(o.recipe), sort_keys=True))


def output_from_wire(m: jobs_pb2.JobOutput) -> JobOutput:
    return JobOutput(m.sha256, m.name, m.size, m.library_path, _recipe_from_json(m.recipe_json))


def job_to_wire(job: Job) -> jobs_pb2.Job:
    m = jobs_pb2.Job(
        job_id=job.job_id, kind=job.kind, state=state_to_wire(job.state),
        input_sha256=list(job.input_sha256), output_sha256=[o.sha256 for o in job.outputs],
        params_json=job.params_json, worker_id=job.worker_id, attempts=job.attempts,
        error=job.error, created_unix_ms=job.created_unix_ms,
        updated_unix_ms=job.updated_unix_ms, parent_id=job.parent_id,
        requires=list(job.requires), priority=job.priority, submitter=job.submitter,
        progress=job.progress, progress_message=job.progress_message,
        outputs=[output_to_wire(o) for o in job.outputs], input_path=job.input_path,
        input_size=job.input_size, max_attempts=job.max_attempts,
        lease_expires_unix_ms=job.lease_expires_unix_ms, timeout_ms=job.timeout_ms,
        started_unix_ms=job.started_unix_ms, finished_unix_ms=job.finished_unix_ms,
        batch_kind=job.batch_kind, handbacks=job.handbacks)
    if job.batch is not None:
        b = job.batch
        m.batch.CopyFrom(jobs_pb2.BatchCounts(
            total=b.total, pending=b.pending, running=b.running, completed=b.completed,
            failed=b.failed, cancelled=b.cancelled))
    return m


def job_from_wire(m: jobs_pb2.Job) -> Job:
    batch = None
    if m.HasField("batch"):
        b = m.batch
        batch = BatchCounts(b.total, b.pending, b.running, b.completed, b.failed, b.cancelled)
    return Job(
        job_id=JobId(m.job_id), kind=m.kind,
        state=state_from_wire(m.state) or JobState.PENDING,
        input_sha256=tuple(m.input_sha256), params=_recipe_from_json(m.params_json),
        worker_id=m.worker_id, attempts=m.attempts, max_attempts=m.max_attempts,
        error=m.error, created_unix_ms=m.created_unix_ms, updated_unix_ms=m.updated_unix_ms,
        parent_id=m.parent_id, requires=tuple(m.requires), priority=m.priority,
        submitter=m.submitter, progress=m.progress, progress_message=m.progress_message,
        batch=batch, batch_kind=m.batch_kind,
        outputs=tuple(output_from_wire(o) for o in m.outputs), input_path=m.input_path,
        input_size=m.input_size, lease_expires_unix_ms=m.lease_expires_unix_ms,
        timeout_ms=m.timeout_ms, started_unix_ms=m.started_unix_ms,
        finished_unix_ms=m.finished_unix_ms, handbacks=m.handbacks)


def request_to_wire(r: JobRequest) -> jobs_pb2.SubmitJobRequest:
    return jobs_pb2.SubmitJobRequest(
        kind=r.kind, input_sha256=list(r.input_sha256),
        params_json=json.dumps(dict(r.params)) if r.params else "",
        library_paths=list(r.library_paths), library_folder=r.library_folder,
        requires=list(r.requires), priority=r.priority, shoot_of=r.shoot_of)


def request_from_wire(m: jobs_pb2.SubmitJobRequest) -> JobRequest:
    return JobRequest(
        kind=m.kind.strip(), input_sha256=tuple(s.strip().lower() for s in m.input_sha256),
        params=params_from_json(m.params_json), library_paths=tuple(m.library_paths),
        library_folder=m.library_folder, shoot_of=m.shoot_of,
        requires=tuple(t.strip() for t in m.requires if t.strip()), priority=m.priority)


def filter_to_wire(f: JobFilter) -> jobs_pb2.ListJobsRequest:
    return jobs_pb2.ListJobsRequest(state=state_to_wire(f.state), limit=f.limit, kind=f.kind,
                                    parent_id=f.parent_id, top_level=f.top_level)


def filter_from_wire(m: jobs_pb2.ListJobsRequest) -> JobFilter:
    return JobFilter(state_from_wire(m.state), m.kind, m.parent_id, m.top_level,
                     m.limit or 100)


# Work stream: worker -> server --------------------------------------------------------------


def report_to_wire(r: WorkerReport) -> jobs_pb2.WorkerMessage:
    W = jobs_pb2.WorkerMessage
    if isinstance(r, WorkerHello):
        return W(hello=W.Hello(capabilities=list(r.capabilities),
                               max_concurrent=r.max_concurrent,
                               held=[W.Held(job_id=h.job_id, attempt=h.attempt)
                                     for h in r.held],
                               version=r.version, executors=list(r.executors)))
    if isinstance(r, WorkProgress):
        return W(progress=W.Progress(job_id=r.job_id, attempt=r.attempt, fraction=r.fraction,
                                     message=r.message, processing=r.processing,
                                     finishing=r.finishing))
    if isinstance(r, WorkDone):
        return W(done=W.Done(job_id=r.job_id, attempt=r.attempt,
                             output_sha256=[o.sha256 for o in r.outputs],
                             outputs=[output_to_wire(o) for o in r.outputs],
                             duration_ms=r.duration_ms))
    if isinstance(r, WorkFailed):
        return W(failed=W.Failed(job_id=r.job_id, attempt=r.attempt, error=r.error,
                                 retryable=r.retryable))
    if isinstance(r, WorkReleased):
        return W(release=W.Release(job_id=r.job_id, attempt=r.attempt, reason=r.reason))
    if isinstance(r, WorkCancelled):
        return W(cancelled=W.Cancelled(job_id=r.job_id, attempt=r.attempt))
    if isinstance(r, WorkCapacity):
        return W(capacity=W.Capacity(slots=r.slots))
    return W(heartbeat=W.Heartbeat())


def worker_text(text: str) -> str:
    """A worker's text (a job id, a progress message, an error, a reason) as the server keeps
    it: NUL is no character of text, and PostgreSQL refuses it in a text column (the report
    would fail instead of being answered), so each NUL becomes U+FFFD on either engine."""
    return text.replace("\x00", "\ufffd")


def report_from_wire(m: jobs_pb2.WorkerMessage) -> WorkerReport | None:
    """None for a message with no kind (a newer worker's message this server doesn't know)."""
    kind = m.WhichOneof("kind")
    t = worker_text
    if kind == "hello":
        h = m.hello
        return WorkerHello(tuple(h.capabilities), h.max_concurrent,
                           tuple(Held(t(x.job_id), x.attempt) for x in h.held), h.version,
                           tuple(h.executors))
    if kind == "progress":
        p = m.progress
        return WorkProgress(t(p.job_id), p.attempt, p.fraction, t(p.message), p.processing,
                            p.finishing)
    if kind == "done":
        d = m.done
        outputs = tuple(output_from_wire(o) for o in d.outputs) or tuple(
            JobOutput(sha, "", 0) for sha in d.output_sha256)
        return WorkDone(t(d.job_id), d.attempt, outputs, d.duration_ms)
    if kind == "failed":
        f = m.failed
        return WorkFailed(t(f.job_id), f.attempt, t(f.error), f.retryable)
    if kind == "release":
        return WorkReleased(t(m.release.job_id), m.release.attempt, t(m.release.reason))
    if kind == "cancelled":
        return WorkCancelled(t(m.cancelled.job_id), m.cancelled.attempt)
    if kind == "heartbeat":
        return WorkHeartbeat()
    if kind == "capacity":
        return WorkCapacity(m.capacity.slots)
    return None


# Work stream: server -> worker --------------------------------------------------------------


def order_to_wire(o: ServerOrder) -> jobs_pb2.WorkAssignment:
    if isinstance(o, Assignment):
        return jobs_pb2.WorkAssignment(job=job_to_wire(o.job),
                                       lease_expires_unix_ms=o.lease_expires_unix_ms)
    if isinstance(o, CancelOrder):
        return jobs_pb2.WorkAssignment(cancel_job_id=o.job_id, cancel_attempt=o.attempt)
    if isinstance(o, StreamTerms):
        return jobs_pb2.WorkAssignment(heartbeat_ms=o.heartbeat_ms, lease_ms=o.lease_ms)
    return jobs_pb2.WorkAssignment(refused_job_id=o.job_id, refused_reason=o.reason)


def order_from_wire(m: jobs_pb2.WorkAssignment) -> ServerOrder | None:
    if m.HasField("job"):
        return Assignment(job_from_wire(m.job), m.lease_expires_unix_ms)
    if m.cancel_job_id:
        return CancelOrder(m.cancel_job_id, m.cancel_attempt)
    if m.refused_job_id:
        return ReportRefused(m.refused_job_id, m.refused_reason)
    if m.heartbeat_ms or m.lease_ms:
        return StreamTerms(m.heartbeat_ms, m.lease_ms)
    return None


def recipe_json(recipe: Mapping[str, object]) -> str:
    return json.dumps(dict(recipe), sort_keys=True)
