"""The job queue's state machine, on both backends (SQLite and PostgreSQL): leases and their
attempt numbers as fencing tokens, expiry, the attempt limit, hand-backs, cancels and batch
parents; the timeout policy and the fair order of the dispatcher."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from photonic.jobs_model import BATCH_KIND, JobFilter, JobOutput, JobState
from photonic.server.jobs.dispatch import _fair_order
from photonic.server.jobs.queue import JobQueue, Lease, NewJob
from photonic.server.jobs.sqlite_queue import SqliteJobQueue
from photonic.server.jobs.timeouts import TimeoutPolicy, p95

SHA = "a" * 64


QueueOpener = Callable[[], JobQueue]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QueueOpener]:
    """Opens the queue under test on the same store each call (a restart reopens it): the
    embedded SQLite file, and PostgreSQL in a fresh database of the session's cluster. Every
    test below runs on both: one contract, two backends."""
    opened: list[JobQueue] = []

    def sqlite() -> JobQueue:
        return SqliteJobQueue(tmp_path / "jobs.db")

    def postgresql() -> JobQueue:
        from photonic.server.jobs.pg_queue import PgJobQueue
        return PgJobQueue(url)

    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    make = sqlite if request.param == "sqlite" else postgresql

    def opener() -> JobQueue:
        opened.append(make())
        return opened[-1]

    yield opener
    for queue in opened:
        queue.close()


@pytest.fixture
def q(open_queue: QueueOpener) -> JobQueue:
    return open_queue()


def _add(q: JobQueue, job_id: str = "j1", **kw: object) -> None:
    q.add([NewJob(job_id, "facecrop", "admin", 2, input_sha256=SHA, **kw)],  # type: ignore[arg-type]
          now_ms=1000)


def test_lease_numbers_attempts_and_refuses_reports_of_stale_ones(q: JobQueue) -> None:
    """Each lease is a new attempt; progress, uploads and results of another attempt are
    refused (None/False), and a leased job cannot be leased twice."""
    _add(q)
    job = q.lease("j1", "w1", 5000, 60_000, 1000)
    assert job is not None and job.attempts == 1 and job.state is JobState.READING
    assert q.lease("j1", "w2", 5000, 60_000, 1000) is None
    assert q.progress(Lease("j1", 2), 0.5, "", True, 6000, 1100) is None
    assert q.record_upload(Lease("j1", 2), "b" * 64, 10) is False
    moved = q.progress(Lease("j1", 1), 0.5, "half", True, 6000, 1100)
    assert moved is not None and moved.state is JobState.PROCESSING
    assert q.record_upload(Lease("j1", 1), "b" * 64, 10)
    done = q.complete(Lease("j1", 1), [JobOutput("b" * 64, "x.png", 10, "lib/x.png")], 5, 1200)
    assert done is not None and done.state is JobState.COMPLETED
    assert [o.name for o in done.outputs] == ["x.png"]
    assert q.complete(Lease("j1", 1), [], 5, 1300) is None


def test_expired_lease_returns_to_pending_then_fails_at_the_attempt_limit(
        q: JobQueue) -> None:
    """An expired lease is a failed attempt: PENDING again, then FAILED with the last error
    once max_attempts attempts have failed."""
    _add(q)
    q.lease("j1", "w1", 2000, 60_000, 1000)
    [back] = q.expired(2001)
    assert back.state is JobState.PENDING and "w1" in back.error
    q.lease("j1", "w2", 4000, 60_000, 2100)
    [failed] = q.expired(4001)
    assert failed.state is JobState.FAILED and "w2" in failed.error and failed.attempts == 2


def test_a_handed_back_job_does_not_count_as_a_failure(q: JobQueue) -> None:
    """Release returns the job to PENDING without spending one of its attempts."""
    _add(q)
    for attempt in (1, 2, 3):
        q.lease("j1", "w1", 9000, 60_000, 1000)
        released = q.release(Lease("j1", attempt), "shutting down", 1100)
        assert released is not None and released.state is JobState.PENDING
    q.lease("j1", "w1", 9000, 60_000, 1000)
    again = q.fail_attempt(Lease("j1", 4), "flaky", True, 1200)
    assert again is not None and again.state is JobState.PENDING


def test_hand_backs_are_counted_apart_so_tries_never_exceed_the_limit(
        open_queue: QueueOpener) -> None:
    """Three hand-backs take attempt numbers 1-3 (the fencing token only goes up) but no
    tries: the job then fails twice, its limit, and reads attempts 5, handbacks 3, tries 2
    of 2, also after a restart reads it back from the store."""
    q = open_queue()
    _add(q)
    for attempt in (1, 2, 3):
        q.lease("j1", "w1", 9000, 60_000, 1000)
        q.release(Lease("j1", attempt), "no free slot", 1100)
    q.lease("j1", "w1", 9000, 60_000, 1000)
    retried = q.fail_attempt(Lease("j1", 4), "flaky", True, 1200)
    assert retried is not None and (retried.attempts, retried.handbacks, retried.tries) == (
        4, 3, 1)
    q.lease("j1", "w1", 9000, 60_000, 1300)
    failed = q.fail_attempt(Lease("j1", 5), "flaky again", True, 1400)
    assert failed is not None and failed.state is JobState.FAILED
    reread = open_queue().get("j1")
    assert reread is not None and (reread.attempts, reread.handbacks, reread.tries,
                                   reread.max_attempts) == (5, 3, 2, 2)


def test_a_permanent_failure_ends_the_job_at_once(q: JobQueue) -> None:
    _add(q)
    q.lease("j1", "w1", 9000, 60_000, 1000)
    failed = q.fail_attempt(Lease("j1", 1), "no face found", False, 1100)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error == "no face found"


def test_cancel_ends_pending_at_once_and_flags_leased_until_confirmed_or_expired(
        q: JobQueue) -> None:
    _add(q, "pending")
    _add(q, "leased")
    q.lease("leased", "w1", 2000, 60_000, 1000)
    changed = {j.job_id: j.state for j in q.request_cancel("pending", 1100)}
    assert changed == {"pending": JobState.CANCELLED}
    [flagged] = q.request_cancel("leased", 1100)
    assert flagged.state is JobState.READING
    assert q.lease("leased", "w2", 9000, 60_000, 1200) is None
    [ended] = q.expired(2001)
    assert ended.state is JobState.CANCELLED


def test_batch_parent_follows_its_children(q: JobQueue) -> None:
    """A parent is PROCESSING once a child runs, and FAILED with a count when any child
    failed after all ended; the siblings still complete."""
    q.add([NewJob("p", BATCH_KIND, "admin", 2, batch_kind="facecrop"),
           *(NewJob(f"c{i}", "facecrop", "admin", 2, parent_id="p", input_sha256=SHA)
             for i in range(3))], now_ms=1000)
    assert [j.job_id for j in q.pending(10)] == ["c0", "c1", "c2"]  # parents never run
    q.lease("c0", "w", 9000, 60_000, 1000)
    parent = q.settle_parent("p", 1001)
    assert parent is not None and parent.state is JobState.PROCESSING
    assert q.expired(5000) == []  # a running parent holds no lease to expire
    q.fail_attempt(Lease("c0", 1), "corrupt image", False, 1100)
    for child in ("c1", "c2"):
        q.lease(child, "w", 9000, 60_000, 1100)
        q.record_upload(Lease(child, 1), "b" * 64, 1)
        q.complete(Lease(child, 1), [JobOutput("b" * 64, "o.jpg", 1)], 10, 1200)
    ended = q.settle_parent("p", 1300)
    assert ended is not None and ended.state is JobState.FAILED
    assert ended.error == "1 of 3 failed"
    assert ended.batch is not None and (ended.batch.completed, ended.batch.failed) == (2, 1)
    kids = q.find(JobFilter(parent_id="p"))
    assert [k.state for k in kids] == [JobState.FAILED, JobState.COMPLETED, JobState.COMPLETED]


def test_restart_keeps_leases_and_extends_them(open_queue: QueueOpener) -> None:
    q = open_queue()
    _add(q)
    q.lease("j1", "w1", 2000, 60_000, 1000)
    q.close()
    again = open_queue()
    assert again.extend_leases(50_000) == 1
    assert again.expired(10_000) == []
    job = again.get("j1")
    assert job is not None and job.state is JobState.READING and job.attempts == 1


def test_timeouts_scale_with_input_and_history_within_floor_and_ceiling() -> None:
    policy = TimeoutPolicy(floor_s=60, ceiling_s=600, p95_factor=3, per_megabyte_s=2,
                           per_megapixel_s=1)
    assert policy.timeout_ms(1_000_000, 0, []) == 60_000
    assert policy.timeout_ms(100_000_000, 24_000_000, []) == 224_000
    assert policy.timeout_ms(1, 0, [50_000] * 10) == 150_000
    assert policy.timeout_ms(1, 0, [50_000] * 4) == 60_000  # too few samples
    assert policy.timeout_ms(10**10, 0, []) == 600_000
    assert p95(list(range(1, 101))) == 95


def test_fair_order_alternates_submitters_within_a_priority() -> None:
    """A big batch from one submitter does not starve another's job of the same priority;
    a higher priority goes first."""
    def job(jid: str, who: str, prio: int = 0) -> object:
        from photonic.jobs_model import Job, JobId
        return Job(JobId(jid), "facecrop", JobState.PENDING, submitter=who, priority=prio)

    jobs = [job("a1", "alice"), job("a2", "alice"), job("a3", "alice"), job("b1", "bob"),
            job("urgent", "carol", 5)]
    ordered = [j.job_id for j in _fair_order(jobs)]  # type: ignore[arg-type]
    assert ordered == ["urgent", "a1", "b1", "a2", "a3"]


def test_completed_inputs_names_the_contents_a_completed_job_took(q: JobQueue) -> None:
    """The safety view's question: of these contents, which did some job complete on? A
    leased or failed job's input does not count, nor a content no job took."""
    other, never = "b" * 64, "c" * 64
    _add(q, "done")
    q.add([NewJob("running", "facecrop", "admin", 2, input_sha256=other)], now_ms=1000)
    q.lease("done", "w1", 5000, 60_000, 1000)
    assert q.complete(Lease("done", 1), [], 5, 1100) is not None
    q.lease("running", "w1", 5000, 60_000, 1000)
    assert q.completed_inputs([SHA, other, never, SHA]) == {SHA}
    assert q.completed_inputs([]) == set()
