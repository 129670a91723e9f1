"""The library lock shared by every server on one PostgreSQL: session-level advisory locks on
a connection of its own, one per path of the batch, taken in ascending key order (two servers
locking overlapping batches never deadlock) with one statement, and the whole-library key
taken shared beside them (exclusive by hold_all).

Why advisory locks rather than the catalog's row locks: the lock must cover a path whose head
row does not exist yet (a first version), and the library writes choose free file names in
between catalog statements; an advisory lock names the path itself, whichever catalog runs
the transaction. A dead server's locks go with its connection."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager

from photonic.errors import Transient
from photonic.server.pg_db import PgConnection, connect, unreachable_as_transient
from photonic.server.shared.pg_keys import WHOLE_LIBRARY, PathKey, path_key

LOCK_TIMEOUT_S = 60
"""How long a batch waits for paths another server holds before it fails as Transient (the
agent sends again): a holder keeps them for one slice, milliseconds, unless it hangs."""
_LOCK_PATHS = ("SELECT pg_advisory_lock_shared(%s), "
               "(SELECT count(pg_advisory_lock(k)) FROM unnest(%b::bigint[]) AS k)")
"""The shared key, then the paths, in one round trip (a target list is evaluated in order,
as _UNLOCK_PATHS relies on too)."""
_UNLOCK_PATHS = ("SELECT pg_advisory_unlock_shared(%s), "
                 "(SELECT count(pg_advisory_unlock(k)) FROM unnest(%b::bigint[]) AS k)")


class _SessionLost(Exception):
    """The lock's session was found gone: worth one more try on a new one."""

    def __init__(self, error: Transient) -> None:
        super().__init__(str(error))
        self.error = error


class PgLibraryLock:
    """This server's holders take turns on a thread lock first, so one connection serves
    them all and at most one batch of this server waits in the database."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._local = threading.Lock()
        self._conn: PgConnection | None = None

    def hold(self, keys: Iterable[PathKey]) -> AbstractContextManager[object]:
        return self._held(sorted({path_key(k) for k in keys}))

    def hold_all(self) -> AbstractContextManager[object]:
        return self._held(None)

    @contextmanager
    def _held(self, keys: list[int] | None) -> Iterator[None]:
        with self._local:
            conn = self._lock(keys)
            try:
                yield
            finally:
                self._unlock(conn, keys)

    def _lock(self, keys: list[int] | None) -> PgConnection:
        """A session found lost (a database restart, a cut connection) is opened again and
        the batch locked once more, rather than failing it."""
        try:
            return self._lock_once(keys)
        except _SessionLost:
            pass
        try:
            return self._lock_once(keys)
        except _SessionLost as lost:
            raise lost.error from None

    def _lock_once(self, keys: list[int] | None) -> PgConnection:
        conn = self._connection()
        try:
            with unreachable_as_transient(self._url):
                if keys is None:
                    conn.execute("SELECT pg_advisory_lock(%s)", (WHOLE_LIBRARY,))
                else:  # the shared key first: a path holder then waits for nothing it holds
                    conn.execute(_LOCK_PATHS, (WHOLE_LIBRARY, keys))
        except Transient as e:  # timed out half-way: the session drops what it took
            lost = conn.broken
            conn.close()
            if lost:
                raise _SessionLost(e) from e
            raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _unlock(self, conn: PgConnection, keys: list[int] | None) -> None:
        try:
            if keys is None:
                conn.execute("SELECT pg_advisory_unlock(%s)", (WHOLE_LIBRARY,))
            else:
                conn.execute(_UNLOCK_PATHS, (WHOLE_LIBRARY, keys))
        except Exception:  # a lost session: its locks are gone; start a fresh one next time
            conn.close()

    def _connection(self) -> PgConnection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = connect(self._url)
            self._conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'".encode())
        return self._conn

    def close(self) -> None:
        with self._local:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
