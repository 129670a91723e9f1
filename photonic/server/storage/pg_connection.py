"""The one connection a PgCatalog (and a PgJobQueue) holds, shared by its threads one at a
time (as SqliteCatalog shares its SQLite connection under a lock): servers share the
database, not a connection. A broken connection is opened again on the next call; a database
that cannot be reached is Transient, naming the host and never the password
(pg_db.unreachable_as_transient)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from photonic.server.pg_db import PgConnection, connect, unreachable_as_transient


class PgSession:
    """Needs nothing but a URL; the catalog's mixins read and write through it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._conn: PgConnection | None = None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> PgConnection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = durable_commits(connect(self.url))
        return self._conn

    @contextmanager
    def connection(self) -> Iterator[PgConnection]:
        """The connection outside any transaction (autocommit), held by this thread."""
        with self._lock, unreachable_as_transient(self.url):
            yield self._connection()

    @contextmanager
    def tx(self, *, durable: bool = True, pipelined: bool = False) -> Iterator[PgConnection]:
        """One transaction, committed when the block ends, rolled back if it raises.

        durable=False commits with synchronous_commit off: the commit returns before its WAL
        is flushed, and the next durable commit (make_durable) flushes it together with every
        commit before it. The caller acknowledges nothing of it before then.

        pipelined: statements are sent without waiting for each one's answer, until a result
        is read (pipeline mode): a photo's version costs one round trip to the database, not
        one per statement. The block must read results by fetching rows, never rowcount; an
        error surfaces at the next read or at the end, and rolls the whole block back. BEGIN
        and the SET travel with the block's first read, and COMMIT with its last statements:
        a manifest slice's transaction is two round trips (its heads, its writes), not five.
        A durable commit still returns only once PostgreSQL has answered the COMMIT."""
        with self._lock, unreachable_as_transient(self.url):
            conn = self._connection()
            with conn.pipeline() if pipelined else nullcontext(), conn.transaction():
                if not durable:
                    conn.execute("SET LOCAL synchronous_commit TO OFF")
                yield conn

    def one(self, query: str, args: Sequence[object] = ()) -> tuple[Any, ...] | None:
        with self.connection() as c:
            row: tuple[Any, ...] | None = c.execute(query, args).fetchone()
            return row

    def all(self, query: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self.connection() as c:
            return list(c.execute(query, args).fetchall())


def durable_commits(conn: PgConnection) -> PgConnection:
    """A commit acknowledges photos, so it must return only once durable: a database (or
    role) configured with synchronous_commit = off gets it turned back on for this session.
    Any stronger setting (remote_write, remote_apply for synchronous replicas) is kept."""
    row = conn.execute("SHOW synchronous_commit").fetchone()
    if row is not None and str(row[0]) == "off":
        conn.execute("SET synchronous_commit TO on")
    return conn


class SharedSql:
    """A connection that takes the statements written for both engines (sql_access): `?`
    placeholders become psycopg's `%s` (those statements hold no literal '?' or '%')."""

    def __init__(self, conn: PgConnection) -> None:
        self._c = conn

    def execute(self, sql: str, args: Sequence[Any] = (), /) -> Any:
        return self._c.execute(sql.replace("?", "%s"), tuple(args))
