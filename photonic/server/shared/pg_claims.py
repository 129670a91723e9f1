"""Upload claims shared by every server on one PostgreSQL: a claim is a session-level
advisory lock keyed by the content's hash, taken on a connection of its own.

Why advisory locks rather than rows with a lease: a server that dies (SIGKILL, power) drops
its connection, and PostgreSQL frees its locks at that moment, so another server resumes the
upload at once instead of after a lease runs out; nothing is written per claim (no row, no
WAL, no heartbeat to renew it); and a claim cannot outlive its holder by a bug in a release
path. The cost: a claim lives exactly as long as one connection, so a connection lost while
this server keeps running is opened again and its claims taken again (were one taken
meanwhile by another server, both would write the same content-addressed bytes: wasted work,
never a wrong object)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from photonic.errors import Transient
from photonic.logfmt import event
from photonic.server.pg_db import PgConnection, connect, unreachable_as_transient
from photonic.server.shared.claims import LocalUploadClaims
from photonic.server.shared.pg_keys import content_key, lock_ids

log = logging.getLogger("photonic.server.claims")

CHANNEL = "photonic_claims"
"""A released claim's content, so waiters on other servers look again at once."""
RECHECK_S = 1.0
"""How often a waiter looks at a claim held elsewhere: a dead holder frees its claim with no
notification."""
_UNLOCK = ("SELECT count(pg_advisory_unlock(k)), count(pg_notify('" + CHANNEL + "', s)) "
           "FROM unnest(%s::bigint[], %s::text[]) AS t(k, s)")
_HELD_ELSEWHERE = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid = %s AND objid = %s AND objsubid = 1)")


class PgUploadClaims:
    """In-process claims first (streams of this server wait on an event, no database), then
    the advisory lock. Every database call runs on one thread, in the order made, so a
    release queued before a new claim of the same content reaches the database first."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._local = LocalUploadClaims()
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "photonic-claims")
        self._conn: PgConnection | None = None
        self._locked: Counter[int] = Counter()
        """Keys this session holds (the database thread's own), to take again after a
        reconnection."""
        self._remote: dict[str, set[asyncio.Future[None]]] = {}
        self._mutex = threading.Lock()
        self._releasing: list[tuple[int, str]] = []
        self._flush_queued = False

    def held(self, sha256: str) -> bool:
        return self._local.held(sha256)

    async def try_claim(self, sha256: str) -> bool:
        return bool(await self.try_claim_many([sha256]))

    async def try_claim_many(self, sha256s: Sequence[str]) -> set[str]:
        mine = [sha for sha in dict.fromkeys(sha256s) if self._local.claim_now(sha)]
        if not mine:
            return set()
        keys = {content_key(sha): sha for sha in mine}
        taking = self._thread.submit(self._lock_many, list(keys))
        try:
            taken = await asyncio.wrap_future(taking)
        except asyncio.CancelledError:
            taking.add_done_callback(self._undo)
            for sha in mine:
                self._local.release(sha)
            raise
        except BaseException:
            for sha in mine:
                self._local.release(sha)
            raise
        claimed = {keys[k] for k in taken if k in keys}
        for sha in mine:
            if sha not in claimed:
                self._local.release(sha)
        return claimed

    def release(self, sha256: str) -> None:
        if not self._local.held(sha256):
            return
        self._local.release(sha256)
        self._queue_release(content_key(sha256), sha256)

    def _queue_release(self, key: int, sha256: str) -> None:
        with self._mutex:
            self._releasing.append((key, sha256))
            if self._flush_queued:
                return
            self._flush_queued = True
        with contextlib.suppress(RuntimeError):  # closed: the session's locks went with it
            self._thread.submit(self._flush_releases)

    async def wait_released(self, sha256: str) -> None:
        """A claim of this server: until its stream lets go. Another server's: until it
        releases it (its notification) or its session ends (seen by looking again)."""
        if self._local.held(sha256):
            await self._local.wait_released(sha256)
            return
        classid, objid = lock_ids(content_key(sha256))
        while await asyncio.wrap_future(self._thread.submit(self._held_elsewhere, classid,
                                                            objid)):
            woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._remote.setdefault(sha256, set()).add(woken)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken, RECHECK_S)
            finally:
                waiting = self._remote.get(sha256)
                if waiting is not None:
                    waiting.discard(woken)
                    if not waiting:
                        del self._remote[sha256]

    async def on_released(self, payload: str) -> None:
        """A release on any server (pg_channels handler): wakes this server's waiters."""
        for woken in self._remote.get(payload, ()):
            if not woken.done():
                woken.set_result(None)

    def wake_all(self) -> None:
        """After the listener reconnected: releases may have been missed."""
        for waiting in self._remote.values():
            for woken in waiting:
                if not woken.done():
                    woken.set_result(None)

    def close(self) -> None:
        """Ends the session: every claim it held is free for other servers. Idempotent."""
        with contextlib.suppress(RuntimeError):  # closed already
            self._thread.submit(self._disconnect)
        self._thread.shutdown(wait=True)

    # on the database thread -----------------------------------------------------------------

    def _connection(self) -> PgConnection:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        if self._conn is not None:
            self._conn.close()
            event(log, "claims_reconnect", claims=sum(self._locked.values()))
        self._conn = connect(self._url)
        for key, count in list(self._locked.items()):  # a lost session lost its locks
            for _ in range(count):
                self._conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
        return self._conn

    def _rows(self, query: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        """A session found lost is opened again (its claims taken again) and the query
        asked once more, so a server that outlives its session does not fail the next
        upload for it."""
        try:
            return self._rows_once(query, args)
        except Transient:
            if self._conn is None or not self._conn.broken:
                raise
        return self._rows_once(query, args)

    def _rows_once(self, query: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with unreachable_as_transient(self._url):
            return list(self._connection().execute(query.encode(), args).fetchall())

    def _lock_many(self, keys: list[int]) -> list[int]:
        """The keys locked now (try-locks never wait, so their order does not matter)."""
        rows = self._rows("SELECT k FROM unnest(%s::bigint[]) AS k "
                          "WHERE pg_try_advisory_lock(k)", (keys,))
        taken = [int(r[0]) for r in rows]
        for key in taken:
            self._locked[key] += 1
        return taken

    def _flush_releases(self) -> None:
        """Every release queued so far, in one statement (releases of a thousand small
        photos are one hop, not a thousand). A claim submitted after a release runs after
        the flush that carries it."""
        with self._mutex:
            batch, self._releasing = self._releasing, []
            self._flush_queued = False
        keys: list[int] = []
        shas: list[str] = []
        for key, sha256 in batch:
            if self._locked[key] <= 0:
                continue
            self._locked[key] -= 1
            if not self._locked[key]:
                del self._locked[key]
            keys.append(key)
            shas.append(sha256)
        if not keys:
            return
        try:
            with unreachable_as_transient(self._url):
                self._connection().execute(_UNLOCK, (keys, shas))
        except Exception as e:  # the locks went with a lost session; nothing else to undo
            event(log, "claims_release_failed", error=str(e)[:200])

    def _undo(self, taking: concurrent.futures.Future[list[int]]) -> None:
        """Claims whose taker was cancelled: the locks taken are given back."""
        if taking.cancelled() or taking.exception() is not None:
            return
        for key in taking.result():
            self._queue_release(key, "")

    def _held_elsewhere(self, classid: int, objid: int) -> bool:
        rows = self._rows(_HELD_ELSEWHERE, (classid, objid))
        return bool(rows and rows[0][0])

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._locked.clear()
