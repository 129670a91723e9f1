"""Upload claims shared by every server on one PostgreSQL: a claim is a row of the UNLOGGED
table upload_claims naming its holder, the claims session of one server; that session holds one
advisory lock on its holder key for as long as it lives.

Why a row per claim and one lock per server: a server that dies (SIGKILL, power) drops its
connection and PostgreSQL frees its lock at that moment, so any row naming that holder is free
for another server at once, instead of after a lease runs out; and nothing has to renew a
claim. Until 2026-12 each claim was an advisory lock of its own, but PostgreSQL's lock table
is shared and small (max_locks_per_transaction x max_connections, 6,400 by default): a few
manifests of tens of thousands of new photos filled it, and then no server could take any
lock. A row costs no WAL (the table is unlogged: after a database crash every session, and so
every claim, is gone anyway).

A claim lives as long as one connection: a connection lost while this server keeps running is
opened again under a new holder key and its claims taken again (were one taken meanwhile by
another server, both would write the same content-addressed bytes: wasted work, never a wrong
object)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import secrets
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from photonic.errors import Transient
from photonic.logfmt import event
from photonic.server.pg_db import PgConnection, connect, unreachable_as_transient
from photonic.server.shared.claims import LocalUploadClaims

log = logging.getLogger("photonic.server.claims")

CHANNEL = "photonic_claims"
"""Released claims' contents (space-separated, up to NOTIFY_BATCH a notification), so waiters
on other servers look again at once."""
NOTIFY_BATCH = 100
"""Contents named by one notification: 100 hashes are 6.5 KB, under PostgreSQL's 8,000-byte
payload limit. A manifest of 1,000 new photos releases 1,000 claims when its stream ends:
one notification each cost the database 1,000 queue entries and every server's listener
1,000 wake-ups on its event loop, while the next manifest is being answered."""
RECHECK_S = 1.0
"""How often a waiter looks at a claim held elsewhere: a dead holder frees its claim with no
notification."""
_LIVE_HOLDERS = (
    "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks "
    "WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
"""The holder keys whose sessions are alive (keys are positive 62-bit: no sign games)."""
_TAKE = (
    "INSERT INTO upload_claims AS c (content, holder) "
    "SELECT s, %s FROM unnest(%b::text[]) AS s "
    "ON CONFLICT (content) DO UPDATE SET holder = EXCLUDED.holder "
    f"WHERE c.holder IN (EXCLUDED.holder, %s) OR c.holder NOT IN ({_LIVE_HOLDERS}) "
    "RETURNING content")
"""Free contents, and contents whose holder is this session, its previous one (the third
argument, 0 for none) or dead, become this holder's."""
_RELEASE = (
    "WITH gone AS (DELETE FROM upload_claims WHERE holder = %s AND content = ANY(%b) "
    "RETURNING content), "
    "numbered AS (SELECT content, (row_number() OVER () - 1) / "
    f"{NOTIFY_BATCH} AS batch FROM gone) "
    "SELECT count(pg_notify('" + CHANNEL + "', payload)) FROM "
    "(SELECT string_agg(content, ' ') AS payload FROM numbered GROUP BY batch) AS batches")
_HELD_ELSEWHERE = (
    "SELECT EXISTS (SELECT 1 FROM upload_claims WHERE content = %s AND holder <> %s "
    f"AND holder IN ({_LIVE_HOLDERS}))")
_FORGET_DEAD = f"DELETE FROM upload_claims WHERE holder NOT IN ({_LIVE_HOLDERS})"


HOLDER = object()
"""In a query's arguments: this session's holder key (see PgUploadClaims._rows)."""


def new_holder_key() -> int:
    """A claims session's name: positive and below 2^62, so pg_locks' (classid, objid) of
    its advisory lock read back as the same bigint."""
    return secrets.randbits(62) + 1


class PgUploadClaims:
    """In-process claims first (streams of this server wait on an event, no database), then
    the row. Every database call runs on one thread, in the order made, so a release queued
    before a new claim of the same content reaches the database first. The table comes with
    the shared migrations, which the event hub applies when it is made (shared_state makes
    it first)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._local = LocalUploadClaims()
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "photonic-claims")
        self._conn: PgConnection | None = None
        self._holder = 0
        """This session's holder key (the database thread's own); 0 before the first."""
        self._claimed: Counter[str] = Counter()
        """Contents whose rows this session holds (the database thread's own), to take again
        after a reconnection; counted, as a cancelled claim's late release may follow a new
        claim of the same content (the row goes when the count does)."""
        self._remote: dict[str, set[asyncio.Future[None]]] = {}
        self._mutex = threading.Lock()
        self._releasing: list[str] = []
        self._flush_queued = False

    def held(self, sha256: str) -> bool:
        return self._local.held(sha256)

    async def try_claim(self, sha256: str) -> bool:
        return bool(await self.try_claim_many([sha256]))

    async def try_claim_many(self, sha256s: Sequence[str]) -> set[str]:
        mine = [sha for sha in dict.fromkeys(sha256s) if self._local.claim_now(sha)]
        if not mine:
            return set()
        taking = self._thread.submit(self._take, mine)
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
        for sha in mine:
            if sha not in taken:
                self._local.release(sha)
        return taken

    def release(self, sha256: str) -> None:
        if not self._local.held(sha256):
            return
        self._local.release(sha256)
        self._queue_release(sha256)

    def _queue_release(self, sha256: str) -> None:
        with self._mutex:
            self._releasing.append(sha256)
            if self._flush_queued:
                return
            self._flush_queued = True
        with contextlib.suppress(RuntimeError):  # closed: the session's claims went with it
            self._thread.submit(self._flush_releases)

    async def wait_released(self, sha256: str) -> None:
        """A claim of this server: until its stream lets go. Another server's: until it
        releases it (its notification) or its session ends (seen by looking again)."""
        if self._local.held(sha256):
            await self._local.wait_released(sha256)
            return
        while await asyncio.wrap_future(self._thread.submit(self._held_elsewhere, sha256)):
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
        """Releases on any server (pg_channels handler): wakes this server's waiters."""
        if not self._remote:
            return
        for sha256 in payload.split():
            for woken in self._remote.get(sha256, ()):
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
        previous = self._holder
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            event(log, "claims_reconnect", claims=len(self._claimed))
        conn = connect(self._url)
        try:
            holder = new_holder_key()
            conn.execute("SELECT pg_advisory_lock(%s)", (holder,))
            conn.execute(_FORGET_DEAD)
            if self._claimed:  # a lost session: its rows are taken back under the new key
                kept = {str(r[0]) for r in conn.execute(
                    _TAKE, (holder, sorted(self._claimed), previous)).fetchall()}
                self._claimed = Counter({sha: n for sha, n in self._claimed.items()
                                         if sha in kept})
        except BaseException:
            conn.close()
            raise
        self._conn, self._holder = conn, holder
        return conn

    def _rows(self, query: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        """A session found lost is opened again (its claims taken again) and the query
        asked once more, so a server that outlives its session does not fail the next
        upload for it. HOLDER among the arguments stands for this session's holder key, as it
        is when the query runs (a new session has a new one)."""
        try:
            return self._rows_once(query, args)
        except Transient:
            if self._conn is None or not self._conn.broken:
                raise
        return self._rows_once(query, args)

    def _rows_once(self, query: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with unreachable_as_transient(self._url):
            conn = self._connection()
            bound = tuple(self._holder if arg is HOLDER else arg for arg in args)
            return list(conn.execute(query.encode(), bound).fetchall())

    def _take(self, shas: list[str]) -> set[str]:
        """The contents claimed now. Sorted: two servers inserting overlapping contents in
        one order never wait on each other in a cycle (a deadlock PostgreSQL would break by
        failing one of them)."""
        rows = self._rows(_TAKE, (HOLDER, sorted(shas), 0))
        taken = {str(r[0]) for r in rows}
        self._claimed.update(taken)
        return taken

    def _flush_releases(self) -> None:
        """Every release queued so far, in one statement (releases of a thousand small
        photos are one hop, not a thousand). A claim submitted after a release runs after
        the flush that carries it."""
        with self._mutex:
            batch, self._releasing = self._releasing, []
            self._flush_queued = False
        shas: list[str] = []
        for sha in batch:
            if self._claimed[sha] <= 0:
                continue
            self._claimed[sha] -= 1
            if not self._claimed[sha]:
                del self._claimed[sha]
                shas.append(sha)
        if not shas:
            return
        try:
            with unreachable_as_transient(self._url):
                self._connection().execute(_RELEASE, (self._holder, shas))
        except Exception as e:  # the rows went with a lost session; nothing else to undo
            event(log, "claims_release_failed", error=str(e)[:200])

    def _undo(self, taking: concurrent.futures.Future[set[str]]) -> None:
        """Claims whose taker was cancelled: the ones taken are given back."""
        if taking.cancelled() or taking.exception() is not None:
            return
        for sha in taking.result():
            self._queue_release(sha)

    def _held_elsewhere(self, sha256: str) -> bool:
        rows = self._rows(_HELD_ELSEWHERE, (sha256, HOLDER))
        return bool(rows and rows[0][0])

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a lost session left its rows to the dead
                self._conn.execute(_RELEASE, (self._holder, sorted(self._claimed)))
            self._conn.close()
            self._conn = None
        self._claimed.clear()
