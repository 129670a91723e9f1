"""The jobs table's columns as both queue backends read them, and the one conversion of such a
row into a Job, so SQLite and PostgreSQL answer with the same Job for the same row."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from photonic.jobs_model import BatchCounts, Job, JobId, JobOutput, JobState

COLUMNS = ("job_id, parent_id, kind, batch_kind, state, input_sha256, input_path, input_size, "
           "params_json, requires, priority, submitter, worker_id, attempts, max_attempts, "
           "error, progress, progress_message, lease_expires_ms, timeout_ms, created_ms, "
           "updated_ms, started_ms, finished_ms, handbacks")
RUNNING_STATES = "('READING', 'PROCESSING')"
MAX_ERROR_CHARS = 2000


def params_of(text: str) -> dict[str, object]:
    """A job's parameters; text that is not a JSON object reads as none."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def job_from_row(row: Sequence[Any], outputs: Sequence[JobOutput] = (),
                 batch: BatchCounts | None = None) -> Job:
    """A row of COLUMNS, in that order, as a Job."""
    (job_id, parent_id, kind, batch_kind, state, sha, path, size, params, requires,
     priority, submitter, worker, attempts, max_attempts, error, progress, message,
     lease_ms, timeout_ms, created, updated, started, finished, handbacks) = row
    return Job(
        job_id=JobId(job_id), kind=kind, state=JobState(state),
        input_sha256=(sha,) if sha else (), params=params_of(params), worker_id=worker,
        attempts=attempts, max_attempts=max_attempts, error=error,
        created_unix_ms=created, updated_unix_ms=updated, parent_id=parent_id,
        requires=tuple(t for t in requires.split(",") if t), priority=priority,
        submitter=submitter, progress=progress, progress_message=message, batch=batch,
        batch_kind=batch_kind, outputs=tuple(outputs), input_path=path, input_size=size,
        lease_expires_unix_ms=lease_ms, timeout_ms=timeout_ms, started_unix_ms=started,
        finished_unix_ms=finished, handbacks=handbacks)


def counts_of(by_state: Mapping[str, int]) -> BatchCounts:
    """A batch's children counted from {state: children}."""
    return BatchCounts(
        total=sum(by_state.values()), pending=by_state.get("PENDING", 0),
        running=by_state.get("READING", 0) + by_state.get("PROCESSING", 0),
        completed=by_state.get("COMPLETED", 0), failed=by_state.get("FAILED", 0),
        cancelled=by_state.get("CANCELLED", 0))
