"""The embedded JobQueue: one SQLite file (jobs.db) beside the catalog, WAL, every commit
durable on return, so a server restart finds every job where it was."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from photonic.jobs_model import BATCH_KIND, Job, JobOutput, JobState
from photonic.server.jobs.job_rows import (
    MAX_ERROR_CHARS,
    RUNNING_STATES,
)
from photonic.server.jobs.queue import Lease, NewJob
from photonic.server.jobs.queue_reads import QueueReads
from photonic.server.sql_access import Executor
from photonic.sqlite_db import LockedDatabase


class SqliteJobQueue(QueueReads, LockedDatabase):
    def __init__(self, path: Path) -> None:
        super().__init__(path, "photonic.server.jobs.migrations", "the job queue")

    # reading --------------------------------------------------------------------------------

    ADDED = "rowid"

    @contextmanager
    def _sql_read(self) -> Iterator[Executor]:
        with self._lock:
            yield self._conn

    def jobs_taking(self, shas: Sequence[str], limit: int) -> list[Job]:
        """Jobs, newest first, whose input is one of these contents (a few: a photo's
        versions); migration 002's index answers it."""
        unique = list(dict.fromkeys(shas))[:500]
        if not unique:
            return []
        with self._lock:
            ids = [r[0] for r in self._conn.execute(
                f"SELECT job_id FROM jobs WHERE input_sha256 IN ({', '.join('?' * len(unique))})"
                " ORDER BY created_ms DESC, rowid DESC LIMIT ?", (*unique, max(1, limit)))]
            return self._load_all(self._conn, ids)

    def completed_inputs(self, shas: Sequence[str]) -> set[str]:
        """Which of these contents some completed job took as its input (500 per query, under
        SQLite's variable limit; an index on input_sha256 answers each)."""
        unique = list(dict.fromkeys(shas))
        found: set[str] = set()
        for start in range(0, len(unique), 500):
            batch = unique[start:start + 500]
            found.update(str(r[0]) for r in self._all(
                "SELECT DISTINCT input_sha256 FROM jobs WHERE state = 'COMPLETED' AND "
                f"input_sha256 IN ({', '.join('?' * len(batch))})", tuple(batch)))
        return found

    # writing --------------------------------------------------------------------------------

    def add(self, jobs: Sequence[NewJob], now_ms: int) -> None:
        with self._tx() as c:
            c.executemany(
                "INSERT INTO jobs (job_id, parent_id, kind, batch_kind, state, input_sha256, "
                "input_path, input_size, input_pixels, params_json, requires, priority, "
                "submitter, max_attempts, created_ms, updated_ms) "
                "VALUES (?, ?, ?, ?, 'PENDING', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(j.job_id, j.parent_id, j.kind, j.batch_kind, j.input_sha256, j.input_path,
                  j.input_size, j.input_pixels, j.params_json, ",".join(j.requires),
                  j.priority, j.submitter, j.max_attempts, now_ms, now_ms) for j in jobs])

    def lease(self, job_id: str, worker_id: str, lease_until_ms: int, timeout_ms: int,
              now_ms: int) -> Job | None:
        with self._tx() as c:
            changed = c.execute(
                "UPDATE jobs SET state = 'READING', attempts = attempts + 1, worker_id = ?, "
                "lease_expires_ms = ?, timeout_ms = ?, started_ms = ?, updated_ms = ?, "
                "progress = 0, progress_message = '' "
                "WHERE job_id = ? AND state = 'PENDING' AND cancel_requested = 0",
                (worker_id, lease_until_ms, timeout_ms, now_ms, now_ms, job_id)).rowcount
            return self._load(c, job_id) if changed else None

    def renew(self, worker_id: str, leases: Sequence[Lease], lease_until_ms: int
              ) -> list[str]:
        renewed: list[str] = []
        with self._tx() as c:
            for lease in leases:
                if c.execute(
                        "UPDATE jobs SET lease_expires_ms = MAX(lease_expires_ms, ?) "
                        f"WHERE job_id = ? AND attempts = ? AND worker_id = ? "
                        f"AND state IN {RUNNING_STATES}",
                        (lease_until_ms, lease.job_id, lease.attempt, worker_id)).rowcount:
                    renewed.append(lease.job_id)
        return renewed

    def progress(self, lease: Lease, fraction: float, message: str, processing: bool,
                 lease_until_ms: int, now_ms: int) -> Job | None:
        with self._tx() as c:
            changed = c.execute(
                "UPDATE jobs SET progress = ?, progress_message = ?, updated_ms = ?, "
                "lease_expires_ms = MAX(lease_expires_ms, ?), "
                "state = CASE WHEN ? THEN 'PROCESSING' ELSE state END "
                f"WHERE job_id = ? AND attempts = ? AND state IN {RUNNING_STATES}",
                (max(0.0, min(1.0, fraction)), message[:200], now_ms, lease_until_ms,
                 processing, lease.job_id, lease.attempt)).rowcount
            return self._load(c, lease.job_id) if changed else None

    def record_upload(self, lease: Lease, sha256: str, size: int) -> bool:
        with self._tx() as c:
            if not _current(c, lease):
                return False
            c.execute("INSERT OR REPLACE INTO job_uploads (job_id, attempt, sha256, size) "
                      "VALUES (?, ?, ?, ?)", (lease.job_id, lease.attempt, sha256, size))
            return True

    def complete(self, lease: Lease, outputs: Sequence[JobOutput], duration_ms: int,
                 now_ms: int) -> Job | None:
        with self._tx() as c:
            row = _current(c, lease)
            if row is None:
                return None
            c.executemany(
                "INSERT OR REPLACE INTO job_outputs (job_id, sha256, name, size, library_path, "
                "recipe_json) VALUES (?, ?, ?, ?, ?, ?)",
                [(lease.job_id, o.sha256, o.name, o.size, o.library_path,
                  json.dumps(dict(o.recipe), sort_keys=True)) for o in outputs])
            c.execute("UPDATE jobs SET state = 'COMPLETED', progress = 1, error = '', "
                      "lease_expires_ms = 0, finished_ms = ?, updated_ms = ? WHERE job_id = ?",
                      (now_ms, now_ms, lease.job_id))
            c.execute("INSERT INTO job_durations (kind, duration_ms, recorded_ms) "
                      "VALUES (?, ?, ?)", (row[0], max(0, duration_ms), now_ms))
            c.execute("DELETE FROM job_uploads WHERE job_id = ?", (lease.job_id,))
            return self._load(c, lease.job_id)

    def fail_attempt(self, lease: Lease, error: str, retryable: bool, now_ms: int
                     ) -> Job | None:
        with self._tx() as c:
            if _current(c, lease) is None:
                return None
            _fail(c, lease.job_id, error, retryable, now_ms)
            return self._load(c, lease.job_id)

    def release(self, lease: Lease, reason: str, now_ms: int) -> Job | None:
        with self._tx() as c:
            if _current(c, lease) is None:
                return None
            c.execute("UPDATE jobs SET state = CASE WHEN cancel_requested THEN 'CANCELLED' "
                      "ELSE 'PENDING' END, worker_id = '', lease_expires_ms = 0, "
                      "handbacks = handbacks + 1, progress_message = ?, updated_ms = ?, "
                      "finished_ms = CASE WHEN cancel_requested THEN ? ELSE 0 END "
                      "WHERE job_id = ?",
                      (f"handed back: {reason}"[:200], now_ms, now_ms, lease.job_id))
            return self._load(c, lease.job_id)

    def cancelled(self, lease: Lease, now_ms: int) -> Job | None:
        with self._tx() as c:
            if _current(c, lease) is None:
                return None
            _end(c, lease.job_id, JobState.CANCELLED, "cancelled", now_ms)
            return self._load(c, lease.job_id)

    def request_cancel(self, job_id: str, now_ms: int) -> list[Job]:
        """A pending job (or a batch's pending children) ends CANCELLED now; a leased one is
        flagged, to end when its worker confirms or its lease runs out. Returns every job
        whose row changed, the flagged leased ones included."""
        with self._tx() as c:
            ids = [job_id, *(r[0] for r in c.execute(
                "SELECT job_id FROM jobs WHERE parent_id = ? AND state IN "
                "('PENDING', 'READING', 'PROCESSING')", (job_id,)))]
            changed: list[str] = []
            for jid in ids:
                row = c.execute("SELECT state, kind FROM jobs WHERE job_id = ?",
                                (jid,)).fetchone()
                if row is None or JobState(row[0]).terminal:
                    continue
                if row[0] == "PENDING" and row[1] != BATCH_KIND:
                    _end(c, jid, JobState.CANCELLED, "cancelled", now_ms)
                else:
                    c.execute("UPDATE jobs SET cancel_requested = 1, updated_ms = ? "
                              "WHERE job_id = ?", (now_ms, jid))
                changed.append(jid)
            return self._load_all(c, changed)

    def expired(self, now_ms: int) -> list[Job]:
        """Leases past their expiry: the job is PENDING again (one more failure counted), or
        FAILED once it has failed max_attempts times, or CANCELLED if a cancel waits."""
        with self._tx() as c:
            ids = [r[0] for r in c.execute(  # a batch parent runs on no lease: never expires
                f"SELECT job_id FROM jobs WHERE state IN {RUNNING_STATES} "
                "AND lease_expires_ms < ? AND kind != ?", (now_ms, BATCH_KIND))]
            for jid in ids:
                worker = c.execute("SELECT worker_id FROM jobs WHERE job_id = ?",
                                   (jid,)).fetchone()[0]
                _fail(c, jid, f"lease expired: worker {worker!r} stopped answering", True,
                      now_ms)
            return self._load_all(c, ids)

    def extend_leases(self, lease_until_ms: int) -> int:
        with self._tx() as c:
            return int(c.execute(
                "UPDATE jobs SET lease_expires_ms = MAX(lease_expires_ms, ?) "
                f"WHERE state IN {RUNNING_STATES}", (lease_until_ms,)).rowcount)

    def settle_parent(self, parent_id: str, now_ms: int) -> Job | None:
        """A batch parent follows its children: PROCESSING once one runs or ended, and at the
        end COMPLETED, or FAILED when a child failed, or CANCELLED. Returns it when its state
        changed."""
        with self._tx() as c:
            row = c.execute("SELECT state FROM jobs WHERE job_id = ? AND kind = ?",
                            (parent_id, BATCH_KIND)).fetchone()
            if row is None or JobState(row[0]).terminal:
                return None
            n = self._counts(c, parent_id)
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
            c.execute("UPDATE jobs SET state = ?, error = ?, progress = ?, updated_ms = ?, "
                      "finished_ms = CASE WHEN ? THEN ? ELSE 0 END WHERE job_id = ?",
                      (state.value, error, progress, now_ms, state.terminal, now_ms,
                       parent_id))
            return self._load(c, parent_id) if state.value != row[0] else None


def _current(c: sqlite3.Connection, lease: Lease) -> tuple[Any, ...] | None:
    """(kind,) when this attempt holds the job's lease now; None when it is stale."""
    row: tuple[Any, ...] | None = c.execute(
        f"SELECT kind FROM jobs WHERE job_id = ? AND attempts = ? AND state IN {RUNNING_STATES}",
        (lease.job_id, lease.attempt)).fetchone()
    return row


def _fail(c: sqlite3.Connection, job_id: str, error: str, retryable: bool, now_ms: int) -> None:
    failures, max_attempts, cancel = c.execute(
        "SELECT failures + 1, max_attempts, cancel_requested FROM jobs WHERE job_id = ?",
        (job_id,)).fetchone()
    if cancel:
        _end(c, job_id, JobState.CANCELLED, "cancelled", now_ms)
    elif retryable and failures < max_attempts:
        c.execute("UPDATE jobs SET state = 'PENDING', failures = ?, error = ?, worker_id = '', "
                  "lease_expires_ms = 0, updated_ms = ? WHERE job_id = ?",
                  (failures, error[:MAX_ERROR_CHARS], now_ms, job_id))
    else:
        c.execute("UPDATE jobs SET failures = ? WHERE job_id = ?", (failures, job_id))
        _end(c, job_id, JobState.FAILED, error, now_ms)


def _end(c: sqlite3.Connection, job_id: str, state: JobState, error: str, now_ms: int) -> None:
    c.execute("UPDATE jobs SET state = ?, error = ?, lease_expires_ms = 0, finished_ms = ?, "
              "updated_ms = ? WHERE job_id = ?",
              (state.value, "" if state is JobState.CANCELLED and error == "cancelled"
               else error[:MAX_ERROR_CHARS], now_ms, now_ms, job_id))
    c.execute("DELETE FROM job_uploads WHERE job_id = ?", (job_id,))
