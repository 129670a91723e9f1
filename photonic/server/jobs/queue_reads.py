"""The job queue's reads that are one statement on both engines, written once (sql_access, as
the catalogs' shared tables are): the SQLite queue and the PostgreSQL queue differ here only in
the column that orders a table's rows as they were added (`rowid`, `seq`), which each gives;
their reads by many contents (IN lists against arrays) and all their writes stay their own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from photonic.jobs_model import BATCH_KIND, BatchCounts, Job, JobFilter, JobOutput
from photonic.server.jobs.job_rows import (
    COLUMNS,
    RUNNING_STATES,
    counts_of,
    job_from_row,
    params_of,
)
from photonic.server.jobs.queue import Lease
from photonic.server.sql_access import Executor, SqlAccess


class QueueReads(SqlAccess):
    """Mixed into SqliteJobQueue and PgJobQueue, which give ADDED and _sql_read. Their write
    transactions load jobs through _load too, with an Executor of the same kind."""

    ADDED: ClassVar[str]
    """The column that orders a table's rows as they were added."""

    def _read_rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._sql_read() as c:
            return list(c.execute(sql, args).fetchall())

    def _load(self, c: Executor, job_id: str) -> Job | None:
        row = c.execute(f"SELECT {COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        outputs = [JobOutput(sha, name, size, lib, params_of(recipe)) for sha, name, size, lib,
                   recipe in c.execute(
                       "SELECT sha256, name, size, library_path, recipe_json FROM job_outputs "
                       f"WHERE job_id = ? ORDER BY {self.ADDED}", (job_id,)).fetchall()]
        batch = self._counts(c, job_id) if row[2] == BATCH_KIND else None
        return job_from_row(row, outputs, batch)

    def _load_all(self, c: Executor, ids: Sequence[str]) -> list[Job]:
        return [j for j in (self._load(c, i) for i in ids) if j is not None]

    def _counts(self, c: Executor, parent_id: str) -> BatchCounts:
        return counts_of({str(s): int(n) for s, n in c.execute(
            "SELECT state, COUNT(*) FROM jobs WHERE parent_id = ? GROUP BY state",
            (parent_id,)).fetchall()})

    def get(self, job_id: str) -> Job | None:
        with self._sql_read() as c:
            return self._load(c, job_id)

    def find(self, f: JobFilter) -> list[Job]:
        where, args = ["1 = 1"], []
        if f.state is not None:
            where.append("state = ?")
            args.append(f.state.value)
        if f.kind:
            where.append("(kind = ? OR batch_kind = ?)")
            args += [f.kind, f.kind]
        if f.parent_id:
            where.append("parent_id = ?")
            args.append(f.parent_id)
        elif f.top_level:
            where.append("parent_id = ''")
        order = (f"created_ms, {self.ADDED}" if f.parent_id
                 else f"created_ms DESC, {self.ADDED} DESC")
        with self._sql_read() as c:
            ids = [r[0] for r in c.execute(
                f"SELECT job_id FROM jobs WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?",
                (*args, max(1, min(f.limit, 10_000)))).fetchall()]
            return self._load_all(c, ids)

    def batch_counts(self, parent_id: str) -> BatchCounts:
        with self._sql_read() as c:
            return self._counts(c, parent_id)

    def input_pixels(self, job_id: str) -> int:
        rows = self._read_rows("SELECT input_pixels FROM jobs WHERE job_id = ?", (job_id,))
        return int(rows[0][0]) if rows else 0

    def pending(self, limit: int) -> list[Job]:
        return [job_from_row(r) for r in self._read_rows(
            f"SELECT {COLUMNS} FROM jobs WHERE state = 'PENDING' AND kind != ? "
            f"ORDER BY priority DESC, created_ms, {self.ADDED} LIMIT ?", (BATCH_KIND, limit))]

    def leased_by(self, worker_id: str) -> list[Job]:
        return [job_from_row(r) for r in self._read_rows(
            f"SELECT {COLUMNS} FROM jobs WHERE worker_id = ? AND state IN {RUNNING_STATES}",
            (worker_id,))]

    def overdue(self, now_ms: int) -> list[Job]:
        return [job_from_row(r) for r in self._read_rows(
            f"SELECT {COLUMNS} FROM jobs WHERE state IN {RUNNING_STATES} "
            "AND timeout_ms > 0 AND started_ms + timeout_ms < ?", (now_ms,))]

    def durations_ms(self, kind: str, limit: int) -> list[int]:
        return [int(r[0]) for r in self._read_rows(
            "SELECT duration_ms FROM job_durations WHERE kind = ? "
            f"ORDER BY recorded_ms DESC, {self.ADDED} DESC LIMIT ?", (kind, limit))]

    def uploads(self, lease: Lease) -> dict[str, int]:
        return {str(s): int(n) for s, n in self._read_rows(
            "SELECT sha256, size FROM job_uploads WHERE job_id = ? AND attempt = ?",
            (lease.job_id, lease.attempt))}

    def state_counts(self) -> dict[str, int]:
        return {str(s): int(n) for s, n in self._read_rows(
            "SELECT state, COUNT(*) FROM jobs GROUP BY state")}

    def state_counts_by_kind(self) -> dict[tuple[str, str], int]:
        """{(state, kind): jobs}; kinds are the registered job kinds, a bounded set."""
        return {(str(s), str(k)): int(n) for s, k, n in self._read_rows(
            "SELECT state, kind, COUNT(*) FROM jobs GROUP BY state, kind")}

    def outputs_of_sha(self, sha256: str) -> bool:
        return bool(self._read_rows("SELECT 1 FROM job_outputs WHERE sha256 = ? LIMIT 1",
                               (sha256,)))
