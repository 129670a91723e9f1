"""The event hub shared by every server on one PostgreSQL: events go into `server_events`
(one bigserial, so one id sequence and one order for all servers), a NOTIFY on
`photonic_events` tells every server to read what is new, and each server keeps a mirror of
the ring (a LocalEventHub fed with the table's ids) that its StreamEvents subscribers, the
web long-poll and WebSocket read as before.

Publishing stays cheap and never waits on the database: the event is queued in memory and a
writer task inserts the queue in batches. Inserts hold a transaction-scoped advisory lock
until they commit, so ids become visible in ascending order (a reader that has seen id N
never later meets a smaller one). A server's own events reach its subscribers through the
table too, so every server sees one order. The epoch is the database's own (a row made by
the migration), so ids stay valid across a server restart."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import operator
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from photonic.logfmt import event
from photonic.server.events import RING_SIZE, LocalEventHub, NumberedEvent, ServerEvent
from photonic.server.pg_db import (
    PgAsyncConnection,
    PgConnection,
    connect,
    connect_async,
    migrate,
    unreachable_as_transient,
)
from photonic.server.shared.pg_keys import EVENTS_ORDER

log = logging.getLogger("photonic.server.events")

CHANNEL = "photonic_events"
MIGRATIONS = "photonic.server.shared.pg_migrations"
"""The shared state's own numbered migrations, not the job queue's folder: this state is not
the queue's, and each evolves (and is shared, or not) without renumbering the other."""
FIELDS = tuple(f.name for f in dataclasses.fields(ServerEvent))
_COLUMNS = ", ".join(FIELDS)
_SELECT = f"SELECT id, ring_only, {_COLUMNS} FROM server_events"
_COLUMN_TYPES = {"size": "bigint", "time_unix_ms": "bigint"}
"""server_events' columns that are not text (ring_only is boolean)."""
_INSERT = (f"INSERT INTO server_events (ring_only, {_COLUMNS}) "
           f"SELECT ring_only, {_COLUMNS} FROM unnest(%b::boolean[], "
           + ", ".join(f"%b::{_COLUMN_TYPES.get(f, 'text')}[]" for f in FIELDS)
           + f") WITH ORDINALITY AS u (ring_only, {_COLUMNS}, n) ORDER BY n")
"""A batch in one statement, its arrays sent in binary, ids given in the batch's order. Not
executemany: its per-row statement and dumping ran on the event loop, about 15 µs a row,
while the manifest that published the events was still being answered."""
OUTBOX_SIZE = 10_000
"""Events waiting for the database: beyond this (a long outage), the oldest are dropped, as
a slow subscriber's are."""
BATCH = 500
RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)


_VALUES = operator.attrgetter(*FIELDS)
"""An event's column values in FIELDS order. Not dataclasses.astuple, which deep-copies each
value: a 1,000-file manifest publishes 1,000 events, written and read back on the event loop
while the manifest is answered."""


def _numbered(row: Sequence[Any]) -> tuple[NumberedEvent, bool]:
    return NumberedEvent(int(row[0]), ServerEvent(*row[2:])), bool(row[1])


class PgEventHub:
    """start() before the first subscriber is served; stop() flushes what is queued."""

    def __init__(self, url: str, ring_size: int = RING_SIZE, queue_size: int = 1000) -> None:
        self._url = url
        self._ring_size = ring_size
        with unreachable_as_transient(url), connect(url) as conn:
            migrate(conn, MIGRATIONS)
            epoch, recent = self._history(conn)
        self._mirror = LocalEventHub(queue_size, ring_size, epoch=epoch)
        for numbered, ring_only in recent:
            self._mirror.deliver(numbered, ring_only=ring_only)
        self._outbox: deque[tuple[ServerEvent, bool]] = deque(maxlen=OUTBOX_SIZE)
        self._queued = asyncio.Event()
        self._empty = asyncio.Event()
        """Set while nothing waits for the database (stop() flushes until then)."""
        self._empty.set()
        self._stale = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0

    def _history(self, conn: PgConnection) -> tuple[str, list[tuple[NumberedEvent, bool]]]:
        row = conn.execute("SELECT epoch FROM server_events_epoch").fetchone()
        assert row is not None, "the shared-state migration makes the epoch row"
        rows = conn.execute(f"{_SELECT} ORDER BY id DESC LIMIT %s".encode(),
                            (self._ring_size,)).fetchall()
        return str(row[0]), [_numbered(r) for r in reversed(rows)]

    # the EventHub interface -----------------------------------------------------------------

    @property
    def epoch(self) -> str:
        return self._mirror.epoch

    @property
    def last_id(self) -> int:
        return self._mirror.last_id

    def publish(self, event: ServerEvent, *, ring_only: bool = False) -> None:
        if len(self._outbox) == self._outbox.maxlen:
            self.dropped += 1
        self._outbox.append((event, ring_only))
        self._empty.clear()
        self._queued.set()

    def resume_point(self, after: int | None, epoch: str | None) -> tuple[int, bool]:
        """As LocalEventHub's, except that an id beyond the last one seen here, in this
        epoch, is another server's that has not reached this one yet: waited for, not a
        reason to read everything again."""
        if after is not None and epoch == self.epoch and after > self.last_id:
            return after, False
        return self._mirror.resume_point(after, epoch)

    def since(self, after: int, limit: int = RING_SIZE) -> list[NumberedEvent]:
        return self._mirror.since(after, limit)

    async def wait_since(self, after: int, timeout_s: float,
                         limit: int = RING_SIZE) -> list[NumberedEvent]:
        return await self._mirror.wait_since(after, timeout_s, limit)

    def subscribe(self) -> AsyncIterator[ServerEvent]:
        return self._mirror.subscribe()

    # the tasks ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._writer(), name="events-writer"),
                       asyncio.create_task(self._reader(), name="events-reader")]
        self._stale.set()  # published between the history read and now

    async def on_notify(self, _payload: str) -> None:
        """A server committed events (pg_channels handler)."""
        self._stale.set()

    def look_again(self) -> None:
        """The listener (re)connected: notifications may have been missed."""
        self._stale.set()

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        if self._tasks and self._outbox:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._empty.wait(), flush_timeout_s)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _writer(self) -> None:
        conn: PgAsyncConnection | None = None
        failures = 0
        try:
            while True:
                await self._queued.wait()
                self._queued.clear()
                while self._outbox:
                    batch = [self._outbox.popleft()
                             for _ in range(min(BATCH, len(self._outbox)))]
                    try:
                        if conn is None or conn.closed or conn.broken:
                            conn = await connect_async(self._url)
                        await self._insert(conn, batch)
                        self._stale.set()  # our own events: read back without the NOTIFY
                        failures = 0
                    except Exception as e:  # the database is away: keep them, try again
                        self._outbox.extendleft(reversed(batch))
                        await self._retry("events_write_retry", failures, e)
                        failures += 1
                self._empty.set()
        finally:
            if conn is not None:
                await conn.close()

    async def _insert(self, conn: PgAsyncConnection,
                      batch: list[tuple[ServerEvent, bool]]) -> None:
        with unreachable_as_transient(self._url):
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_ORDER,))
                rows = [(ring_only, *_VALUES(ev)) for ev, ring_only in batch]
                columns = [list(column) for column in zip(*rows, strict=True)]
                await conn.execute(_INSERT.encode(), columns)
                await conn.execute(
                    "DELETE FROM server_events WHERE id <= "
                    "(SELECT max(id) FROM server_events) - %s", (self._ring_size,))
                await conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))

    async def _reader(self) -> None:
        conn: PgAsyncConnection | None = None
        failures = 0
        try:
            while True:
                await self._stale.wait()
                self._stale.clear()
                try:
                    if conn is None or conn.closed or conn.broken:
                        conn = await connect_async(self._url)
                    await self._read_new(conn)
                    failures = 0
                except Exception as e:
                    self._stale.set()
                    await self._retry("events_read_retry", failures, e)
                    failures += 1
        finally:
            if conn is not None:
                await conn.close()

    async def _read_new(self, conn: PgAsyncConnection) -> None:
        while True:
            with unreachable_as_transient(self._url):
                cur = await conn.execute(f"{_SELECT} WHERE id > %s ORDER BY id LIMIT %s"
                                         .encode(), (self.last_id, BATCH))
                rows = await cur.fetchall()
            for row in rows:
                numbered, ring_only = _numbered(row)
                self._mirror.deliver(numbered, ring_only=ring_only)
            if len(rows) < BATCH:
                return

    @staticmethod
    async def _retry(what: str, failures: int, error: BaseException) -> None:
        delay = RETRY_S[min(failures, len(RETRY_S) - 1)]
        event(log, what, error=str(error)[:200], retry_s=delay)
        await asyncio.sleep(delay)
