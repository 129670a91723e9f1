"""The JobQueue on PostgreSQL, shared by several servers: the same states, leases and fencing
as the SQLite queue, with row locks where two servers may race. A lease takes its row with
FOR UPDATE SKIP LOCKED, so two dispatchers never lease one job; every change that should wake
a dispatcher elsewhere (a job became runnable, a leased attempt must stop) is a NOTIFY on
`photonic_jobs`, sent with the transaction's commit (see pg_listen)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from photonic.jobs_model import BATCH_KIND, Job, JobOutput, JobState
from photonic.server.jobs.job_rows import (
    MAX_ERROR_CHARS,
    RUNNING_STATES,
)
from photonic.server.jobs.pg_listen import CHANNEL, stop_payloads, wake_payload
from photonic.server.jobs.queue import Lease, NewJob
from photonic.server.jobs.queue_reads import QueueReads
from photonic.server.pg_db import PgConnection, migrate
from photonic.server.sql_access import Executor
from photonic.server.storage.pg_connection import PgSession, SharedSql

MIGRATIONS = "photonic.server.jobs.pg_migrations"


class PgJobQueue(QueueReads):
    """One connection per server (a PgSession, as the PostgreSQL catalog holds), used by one
    thread at a time (as the SQLite queue is); servers share the database, not a connection.
    A broken connection is opened again on the next call, and its commits are durable: a job
    result is acknowledged after the queue's commit."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.origin = uuid.uuid4().hex
        """This queue's name in its notifications, so its own listener can skip them."""
        self._session = PgSession(url)
        with self._session.connection() as conn:
            migrate(conn, MIGRATIONS)

    def close(self) -> None:
        self._session.close()

    def _tx(self) -> AbstractContextManager[PgConnection]:
        return self._session.tx()

    def _notify(self, c: PgConnection, payloads: Sequence[str]) -> None:
        for payload in payloads:
            c.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    # reading --------------------------------------------------------------------------------

    ADDED = "seq"

    @contextmanager
    def _sql_read(self) -> Iterator[Executor]:
        with self._tx() as c:
            yield SharedSql(c)

    def jobs_taking(self, shas: Sequence[str], limit: int) -> list[Job]:
        unique = list(dict.fromkeys(shas))[:500]
        if not unique:
            return []
        with self._tx() as c:
            ids = [r[0] for r in c.execute(
                "SELECT job_id FROM jobs WHERE input_sha256 = ANY(%s) "
                "ORDER BY created_ms DESC, seq DESC LIMIT %s", (unique, max(1, limit)))]
            return self._load_all(SharedSql(c), ids)

    def completed_inputs(self, shas: Sequence[str]) -> set[str]:
        unique = list(dict.fromkeys(shas))
        if not unique:
            return set()
        return {str(r[0]) for r in self._read_rows(
            "SELECT DISTINCT input_sha256 FROM jobs WHERE state = 'COMPLETED' "
            "AND input_sha256 = ANY(?)", (unique,))}

    # writing --------------------------------------------------------------------------------

    def add(self, jobs: Sequence[NewJob], now_ms: int) -> None:
        with self._tx() as c:
            with c.cursor() as cur:
                cur.executemany(
                    "INSERT INTO jobs (job_id, parent_id, kind, batch_kind, state, "
                    "input_sha256, input_path, input_size, input_pixels, params_json, "
                    "requires, priority, submitter, max_attempts, created_ms, updated_ms) "
                    "VALUES (%s, %s, %s, %s, 'PENDING', %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                    "%s, %s)",
                    [(j.job_id, j.parent_id, j.kind, j.batch_kind, j.input_sha256,
                      j.input_path, j.input_size, j.input_pixels, j.params_json,
                      ",".join(j.requires), j.priority, j.submitter, j.max_attempts, now_ms,
                      now_ms) for j in jobs])
            if any(j.kind != BATCH_KIND for j in jobs):
                self._notify(c, [wake_payload(self.origin)])

    def lease(self, job_id: str, worker_id: str, lease_until_ms: int, timeout_ms: int,
              now_ms: int) -> Job | None:
        """SKIP LOCKED: a job another server is leasing right now is not waited for; once
        that lease commits, the job is no longer PENDING here either."""
        with self._tx() as c:
            taken = c.execute(
                "SELECT job_id FROM jobs WHERE job_id = %s AND state = 'PENDING' "
                "AND NOT cancel_requested FOR UPDATE SKIP LOCKED", (job_id,)).fetchone()
            if taken is None:
                return None
            c.execute(
                "UPDATE jobs SET state = 'READING', attempts = attempts + 1, worker_id = %s, "
                "lease_expires_ms = %s, timeout_ms = %s, started_ms = %s, updated_ms = %s, "
                "progress = 0, progress_message = '' WHERE job_id = %s",
                (worker_id, lease_until_ms, timeout_ms, now_ms, now_ms, job_id))
            return self._load(SharedSql(c), job_id)

    def renew(self, worker_id: str, leases: Sequence[Lease], lease_until_ms: int
              ) -> list[str]:
        renewed: list[str] = []
        with self._tx() as c:
            for lease in leases:
                if c.execute(
                        "UPDATE jobs SET lease_expires_ms = GREATEST(lease_expires_ms, %s) "
                        "WHERE job_id = %s AND attempts = %s AND worker_id = %s "
                        f"AND state IN {RUNNING_STATES}",
                        (lease_until_ms, lease.job_id, lease.attempt, worker_id)).rowcount:
                    renewed.append(lease.job_id)
        return renewed

    def progress(self, lease: Lease, fraction: float, message: str, processing: bool,
                 lease_until_ms: int, now_ms: int) -> Job | None:
        with self._tx() as c:
            changed = c.execute(
                "UPDATE jobs SET progress = %s, progress_message = %s, updated_ms = %s, "
                "lease_expires_ms = GREATEST(lease_expires_ms, %s), "
                "state = CASE WHEN %s THEN 'PROCESSING' ELSE state END "
                f"WHERE job_id = %s AND attempts = %s AND state IN {RUNNING_STATES}",
                (max(0.0, min(1.0, fraction)), message[:200], now_ms, lease_until_ms,
                 processing, lease.job_id, lease.attempt)).rowcount
            return self._load(SharedSql(c), lease.job_id) if changed else None

    def record_upload(self, lease: Lease, sha256: str, size: int) -> bool:
        with self._tx() as c:
            if _current(c, lease) is None:
                return False
            c.execute("INSERT INTO job_uploads (job_id, attempt, sha256, size) "
                      "VALUES (%s, %s, %s, %s) ON CONFLICT (job_id, attempt, sha256) "
                      "DO UPDATE SET size = EXCLUDED.size",
                      (lease.job_id, lease.attempt, sha256, size))
            return True

    def complete(self, lease: Lease, outputs: Sequence[JobOutput], duration_ms: int,
                 now_ms: int) -> Job | None:
        with self._tx() as c:
            kind = _current(c, lease)
            if kind is None:
                return None
            with c.cursor() as cur:
                cur.executemany(
                    "INSERT INTO job_outputs (job_id, sha256, name, size, library_path, "
                    "recipe_json) VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (job_id, sha256) DO UPDATE SET name = EXCLUDED.name, "
                    "size = EXCLUDED.size, library_path = EXCLUDED.library_path, "
                    "recipe_json = EXCLUDED.recipe_json",
                    [(lease.job_id, o.sha256, o.name, o.size, o.library_path,
                      json.dumps(dict(o.recipe), sort_keys=True)) for o in outputs])
            c.execute("UPDATE jobs SET state = 'COMPLETED', progress = 1, error = '', "
                      "lease_expires_ms = 0, finished_ms = %s, updated_ms = %s "
                      "WHERE job_id = %s", (now_ms, now_ms, lease.job_id))
            c.execute("INSERT INTO job_durations (kind, duration_ms, recorded_ms) "
                      "VALUES (%s, %s, %s)", (kind, max(0, duration_ms), now_ms))
            c.execute("DELETE FROM job_uploads WHERE job_id = %s", (lease.job_id,))
            return self._load(SharedSql(c), lease.job_id)

    def fail_attempt(self, lease: Lease, error: str, retryable: bool, now_ms: int
                     ) -> Job | None:
        """A timed-out attempt is failed by whichever server's expiry loop gets here first;
        the worker may hang on another server, so the attempt's stop is announced too."""
        with self._tx() as c:
            if _current(c, lease) is None:
                return None
            _fail(c, lease.job_id, error, retryable, now_ms)
            self._notify(c, [wake_payload(self.origin),
                             *stop_payloads(self.origin, [lease.job_id])])
            return self._load(SharedSql(c), lease.job_id)

    def release(self, lease: Lease, reason: str, now_ms: int) -> Job | None:
        with self._tx() as c:
            if _current(c, lease) is None:
                return None
            c.execute("UPDATE jobs SET state = CASE WHEN cancel_requested THEN 'CANCELLED' "
                      "ELSE 'PENDING' END, worker_id = '', lease_expires_ms = 0, "
                      "handbacks = handbacks + 1, progress_message = %s, updated_ms = %s, "
                      "finished_ms = CASE WHEN cancel_requested THEN %s ELSE 0 END "
                      "WHERE job_id = %s",
                      (f"handed back: {reason}"[:200], now_ms, now_ms, lease.job_id))
            self._notify(c, [wake_payload(self.origin)])
            return self._load(SharedSql(c), lease.job_id)

    def cancelled(self, lease: Lease, now_ms: int) -> Job | None:
        with self._tx() as c:
            if _current(c, lease) is None:
                return None
            _end(c, lease.job_id, JobState.CANCELLED, "cancelled", now_ms)
            return self._load(SharedSql(c), lease.job_id)

    def request_cancel(self, job_id: str, now_ms: int) -> list[Job]:
        """As the SQLite queue: pending ends CANCELLED now, leased is flagged. The flagged
        attempts are announced, so the server whose worker runs one sends it the stop."""
        with self._tx() as c:
            rows = c.execute(
                "SELECT job_id, state, kind FROM jobs WHERE (job_id = %s OR (parent_id = %s "
                "AND state IN ('PENDING', 'READING', 'PROCESSING'))) ORDER BY seq FOR UPDATE",
                (job_id, job_id)).fetchall()
            changed, flagged = [], []
            for jid, state, kind in rows:
                if JobState(state).terminal:
                    continue
                if state == "PENDING" and kind != BATCH_KIND:
                    _end(c, jid, JobState.CANCELLED, "cancelled", now_ms)
                else:
                    c.execute("UPDATE jobs SET cancel_requested = TRUE, updated_ms = %s "
                              "WHERE job_id = %s", (now_ms, jid))
                    if kind != BATCH_KIND:
                        flagged.append(jid)
                changed.append(jid)
            self._notify(c, stop_payloads(self.origin, flagged))
            return self._load_all(SharedSql(c), changed)

    def expired(self, now_ms: int) -> list[Job]:
        """Every server's expiry loop runs this; SKIP LOCKED hands each expired lease to one
        of them, which fails that attempt once."""
        with self._tx() as c:
            rows = c.execute(
                f"SELECT job_id, worker_id FROM jobs WHERE state IN {RUNNING_STATES} "
                "AND lease_expires_ms < %s AND kind != %s ORDER BY seq FOR UPDATE SKIP LOCKED",
                (now_ms, BATCH_KIND)).fetchall()
            for jid, worker in rows:
                _fail(c, jid, f"lease expired: worker {worker!r} stopped answering", True,
                      now_ms)
            if rows:
                self._notify(c, [wake_payload(self.origin)])
            return self._load_all(SharedSql(c), [r[0] for r in rows])

    def extend_leases(self, lease_until_ms: int) -> int:
        with self._tx() as c:
            return int(c.execute(
                "UPDATE jobs SET lease_expires_ms = GREATEST(lease_expires_ms, %s) "
                f"WHERE state IN {RUNNING_STATES}", (lease_until_ms,)).rowcount)

    def settle_parent(self, parent_id: str, now_ms: int) -> Job | None:
        """As the SQLite queue; the parent's row is locked first, so two servers settling
        the same batch take turns and the second sees the first's result."""
        with self._tx() as c:
            row = c.execute("SELECT state FROM jobs WHERE job_id = %s AND kind = %s "
                            "FOR UPDATE", (parent_id, BATCH_KIND)).fetchone()
            if row is None or JobState(row[0]).terminal:
                return None
            n = self._counts(SharedSql(c), parent_id)
            state, error = JobState(row[0]), ""
            if n.total and n.finished == n.total:
                if n.failed:
                    state, error = JobState.FAILED, f"{n.failed} of {n.total} failed"
                elif n.cancelled:
                    state = JobState.CANCELLED
                else:
                    state = JobState.COMPLETED
            elif n.running or n.finished:
                state = JobState.PROCESSING
            progress = n.finished / n.total if n.total else 0.0
            c.execute("UPDATE jobs SET state = %s, error = %s, progress = %s, updated_ms = %s, "
                      "finished_ms = %s WHERE job_id = %s",
                      (state.value, error, progress, now_ms,
                       now_ms if state.terminal else 0, parent_id))
            return self._load(SharedSql(c), parent_id) if state.value != row[0] else None


def _current(c: PgConnection, lease: Lease) -> str | None:
    """The job's kind when this attempt holds its lease now (the row locked until commit, so
    a racing report of the same attempt waits and then finds it ended); None when stale."""
    row = c.execute(f"SELECT kind FROM jobs WHERE job_id = %s AND attempts = %s "
                    f"AND state IN {RUNNING_STATES} FOR UPDATE",
                    (lease.job_id, lease.attempt)).fetchone()
    return None if row is None else str(row[0])


def _fail(c: PgConnection, job_id: str, error: str, retryable: bool, now_ms: int) -> None:
    row = c.execute("SELECT failures + 1, max_attempts, cancel_requested FROM jobs "
                    "WHERE job_id = %s", (job_id,)).fetchone()
    assert row is not None  # the caller holds the row's lock
    failures, max_attempts, cancel = row
    if cancel:
        _end(c, job_id, JobState.CANCELLED, "cancelled", now_ms)
    elif retryable and failures < max_attempts:
        c.execute("UPDATE jobs SET state = 'PENDING', failures = %s, error = %s, "
                  "worker_id = '', lease_expires_ms = 0, updated_ms = %s WHERE job_id = %s",
                  (failures, error[:MAX_ERROR_CHARS], now_ms, job_id))
    else:
        c.execute("UPDATE jobs SET failures = %s WHERE job_id = %s", (failures, job_id))
        _end(c, job_id, JobState.FAILED, error, now_ms)


def _end(c: PgConnection, job_id: str, state: JobState, error: str, now_ms: int) -> None:
    c.execute("UPDATE jobs SET state = %s, error = %s, lease_expires_ms = 0, finished_ms = %s, "
              "updated_ms = %s WHERE job_id = %s",
              (state.value, "" if state is JobState.CANCELLED and error == "cancelled"
               else error[:MAX_ERROR_CHARS], now_ms, now_ms, job_id))
    c.execute("DELETE FROM job_uploads WHERE job_id = %s", (job_id,))
