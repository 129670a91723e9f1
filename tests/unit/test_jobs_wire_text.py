"""A worker's free text crosses into the job queue as text either engine stores: a NUL in a
progress message, an error, a reason or a job id (PostgreSQL refuses NUL in a text column)
becomes U+FFFD at the wire, so the report is recorded or refused, never an error. Found by the
e2e suite's scale-out run (test_hostile_worker_messages_are_refused_without_harm)."""

from __future__ import annotations

import pytest

from photonic.jobs_model import JobState, WorkFailed, WorkProgress, WorkReleased
from photonic.jobs_wire import report_from_wire
from photonic.server.jobs.queue import Lease, NewJob
from photonic.v1 import jobs_pb2

W = jobs_pb2.WorkerMessage


def test_nul_in_a_workers_text_becomes_a_replacement_character() -> None:
    """Progress, failure and release reports and their job ids carry no NUL after the wire."""
    progress = report_from_wire(W(progress=W.Progress(job_id="j\x001", attempt=1,
                                                      message="half\x00way")))
    assert isinstance(progress, WorkProgress)
    assert (progress.job_id, progress.message) == ("j\ufffd1", "half\ufffdway")
    failed = report_from_wire(W(failed=W.Failed(job_id="j1", attempt=1, error="\x00boom")))
    assert isinstance(failed, WorkFailed) and failed.error == "\ufffdboom"
    released = report_from_wire(W(release=W.Release(job_id="j1", attempt=1, reason="a\x00")))
    assert isinstance(released, WorkReleased) and released.reason == "a\ufffd"


def test_the_postgresql_queue_records_what_the_wire_makes_of_a_nul(pg_url: str) -> None:
    """A hostile worker's progress and failure with NUL bytes are stored and read back on
    PostgreSQL (before, the statement was refused and the report was never answered)."""
    pytest.importorskip("psycopg", reason="psycopg missing: pip install -e '.[dev]'")
    from photonic.server.jobs.pg_queue import PgJobQueue
    queue = PgJobQueue(pg_url)
    try:
        queue.add([NewJob("j1", "facecrop", "admin", 2, input_sha256="a" * 64)], now_ms=1000)
        assert queue.lease("j1", "w1", 5000, 60_000, 1000) is not None
        report = report_from_wire(W(progress=W.Progress(job_id="j1", attempt=1, fraction=0.5,
                                                        message="\x00" * 3, processing=True)))
        assert isinstance(report, WorkProgress)
        moved = queue.progress(Lease(report.job_id, report.attempt), report.fraction,
                               report.message, True, 6000, 1100)
        assert moved is not None and moved.progress_message == "\ufffd" * 3
        failure = report_from_wire(W(failed=W.Failed(job_id="j1", attempt=1,
                                                      error="bad\x00bytes", retryable=False)))
        assert isinstance(failure, WorkFailed)
        failed = queue.fail_attempt(Lease(failure.job_id, failure.attempt), failure.error,
                                    failure.retryable, 1200)
        assert failed is not None and failed.state is JobState.FAILED
        assert failed.error == "bad\ufffdbytes"
        assert queue.progress(Lease("j\ufffd1", 1), 0.1, "", True, 6000, 1300) is None
    finally:
        queue.close()
