"""What only the shared PostgreSQL job queue promises, on a real throwaway PostgreSQL 15:
several queues (servers) on one database never lease one job twice, whatever their
interleaving; a change on one server reaches the listener of another through LISTEN/NOTIFY
(no polling); migrations run once however many servers open the database."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Iterator
from importlib import resources

import pytest

from photonic.jobs_model import JobOutput, JobState
from photonic.server.jobs.pg_listen import JobNotifications
from photonic.server.jobs.pg_queue import PgJobQueue
from photonic.server.jobs.queue import Lease, NewJob
from photonic.server.pg_db import connect

SHA = "a" * 64
SEED = 20
QUEUES = 4
THREADS_PER_QUEUE = 2
JOBS = 60


@pytest.fixture
def queues(pg_url: str) -> Iterator[list[PgJobQueue]]:
    opened = [PgJobQueue(pg_url) for _ in range(QUEUES)]
    yield opened
    for q in opened:
        q.close()


def _job(job_id: str, max_attempts: int = 3) -> NewJob:
    return NewJob(job_id, "facecrop", "admin", max_attempts, input_sha256=SHA)


def test_concurrent_takers_on_four_servers_lease_every_attempt_exactly_once(
        queues: list[PgJobQueue]) -> None:
    """Eight threads over four queues (four connections, as four servers) race for the same
    pending jobs in seeded random order and complete, hand back or fail what they get; every
    (job, attempt) is leased exactly once, attempts count 1, 2, 3... without a gap, a stale
    attempt's result is refused, and every job ends COMPLETED or FAILED."""
    queues[0].add([_job(f"j{i:03d}", max_attempts=3) for i in range(JOBS)], now_ms=1000)
    leases: Counter[tuple[str, int]] = Counter()
    stale_accepted: list[Lease] = []
    errors: list[BaseException] = []
    record = threading.Lock()

    def taker(q: PgJobQueue, worker: str, rng: random.Random) -> None:
        try:
            while True:
                pending = q.pending(JOBS)
                if not pending:
                    if not any(q.state_counts().get(s) for s in ("READING", "PROCESSING",
                                                                  "PENDING")):
                        return
                    continue
                job = rng.choice(pending)
                leased = q.lease(job.job_id, worker, 10**12, 60_000, 2000)
                if leased is None:
                    continue
                lease = Lease(leased.job_id, leased.attempts)
                with record:
                    leases[(lease.job_id, lease.attempt)] += 1
                if lease.attempt > 1 and q.complete(Lease(lease.job_id, lease.attempt - 1),
                                                    [], 1, 3000) is not None:
                    stale_accepted.append(lease)
                roll = rng.random()
                if roll < 0.5:
                    assert q.complete(lease, [JobOutput("b" * 64, "o.jpg", 1)], 5, 3000)
                elif roll < 0.75:
                    assert q.release(lease, "handed back", 3000)
                else:
                    assert q.fail_attempt(lease, "flaky", True, 3000)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=taker, args=(q, f"w{n}-{t}",
                                                    random.Random(SEED * 100 + n * 10 + t)))
               for n, q in enumerate(queues) for t in range(THREADS_PER_QUEUE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    assert [k for k, n in leases.items() if n != 1] == []
    assert stale_accepted == []
    jobs = {j.job_id: j for j in (queues[1].get(f"j{i:03d}") for i in range(JOBS))
            if j is not None}
    assert len(jobs) == JOBS
    for job_id, job in jobs.items():
        assert job.state in (JobState.COMPLETED, JobState.FAILED), job
        attempts = sorted(a for j, a in leases if j == job_id)
        assert attempts == list(range(1, job.attempts + 1)), (job_id, attempts)
    assert sum(leases.values()) >= JOBS


def test_a_job_another_server_is_leasing_is_skipped_not_waited_for(pg_url: str) -> None:
    """While another transaction holds the job's row (a lease in progress elsewhere), lease
    answers None at once instead of queueing behind it; once that transaction ends without
    taking the job, the lease succeeds."""
    q = PgJobQueue(pg_url)
    q.add([_job("j1")], now_ms=1000)
    with connect(pg_url) as other:
        with other.transaction():
            other.execute("SELECT 1 FROM jobs WHERE job_id = 'j1' FOR UPDATE")
            assert q.lease("j1", "w1", 10**12, 60_000, 1000) is None
        leased = q.lease("j1", "w1", 10**12, 60_000, 1000)
    assert leased is not None and leased.attempts == 1
    q.close()


def test_a_submit_on_one_server_wakes_the_listener_of_another(pg_url: str) -> None:
    """Server B listens; a job added on server A wakes it (`pending`) as soon as A commits,
    B's own change does not, and a cancel of a job B's worker runs, requested on A, reaches
    B as a stop of that job. Each wait is bounded and waits for a notification, not a poll."""
    a, b = PgJobQueue(pg_url), PgJobQueue(pg_url)

    async def scenario() -> None:
        woken: asyncio.Queue[str] = asyncio.Queue()
        stopped: asyncio.Queue[list[str]] = asyncio.Queue()

        async def stop(ids: object) -> None:
            await stopped.put(list(ids))  # type: ignore[call-overload]

        listener = JobNotifications(pg_url, b.origin, wake=woken.put_nowait, stop=stop)
        await listener.start()
        try:
            assert await asyncio.wait_for(woken.get(), 10) == "connected"
            await asyncio.to_thread(a.add, [_job("from-a")], 1000)
            assert await asyncio.wait_for(woken.get(), 10) == "pending"
            await asyncio.to_thread(b.add, [_job("from-b")], 1000)
            assert await asyncio.to_thread(b.lease, "from-b", "w", 10**12, 60_000, 1000)
            await asyncio.to_thread(a.request_cancel, "from-b", 1100)
            assert await asyncio.wait_for(stopped.get(), 10) == ["from-b"]
            assert woken.empty()  # B's own submit came before, and woke no one
        finally:
            await listener.stop()

    try:
        asyncio.run(scenario())
    finally:
        a.close()
        b.close()


def test_migrations_run_once_for_every_server_that_opens_the_database(pg_url: str) -> None:
    """A second and third server find the schema in place: one schema_version row per
    migration file, and the queue they open sees the first one's jobs."""
    first = PgJobQueue(pg_url)
    first.add([_job("j1")], now_ms=1000)
    others = [PgJobQueue(pg_url) for _ in range(2)]
    with connect(pg_url) as conn:
        rows = conn.execute("SELECT package, version FROM schema_version "
                            "ORDER BY version").fetchall()
    files = resources.files("photonic.server.jobs.pg_migrations").iterdir()
    numbers = sorted(int(f.name.split("_")[0]) for f in files if f.name.endswith(".sql"))
    assert rows == [("photonic.server.jobs.pg_migrations", n) for n in numbers]
    assert all(o.get("j1") is not None for o in others)
    for q in (first, *others):
        q.close()
