"""Fan-out of server events: bounded per-subscriber queues for StreamEvents, and a bounded
ring of numbered events that the web layer reads from (long-poll and WebSocket), so a client
resumes after the last id it saw and no client can make the server hold more than the ring.

EventHub is the interface; LocalEventHub keeps it in this process's memory (the embedded
server), and PgEventHub (shared/pg_events.py) in a PostgreSQL table that several servers
share, so every server's subscribers see every server's events in one order.

In memory, ids restart at 1 with every process, so the ring also carries an epoch (a random
id made at start): a client that resumes with another process's epoch is told to read
everything again instead of waiting for an id this process may never reach."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

RING_SIZE = 1000
"""Numbered events kept for resuming clients; one that falls further behind sees a gap."""


@dataclass(frozen=True)
class ServerEvent:
    kind: str  # agent_registered | file_committed | file_deduplicated | file_rejected | ...
    agent_id: str
    sha256: str = ""
    watch_name: str = ""
    relative_path: str = ""
    detail: str = ""
    size: int = 0
    job_id: str = ""
    job_state: str = ""
    time_unix_ms: int = field(default_factory=lambda: int(time.time() * 1000))


@dataclass(frozen=True)
class NumberedEvent:
    """An event with its place in the hub's sequence (ids start at 1 and only go up)."""

    event_id: int
    event: ServerEvent


class EventHub(Protocol):
    """Publishing never blocks (it runs on the event loop, in the sync path); a slow
    subscriber loses its oldest events rather than slowing ingest down."""

    @property
    def epoch(self) -> str:
        """Names the numbering: ids from another epoch mean nothing here."""
        ...

    @property
    def last_id(self) -> int:
        """The newest id this server has seen (0: none yet)."""
        ...

    def publish(self, event: ServerEvent, *, ring_only: bool = False) -> None:
        """ring_only: for the web's numbered ring alone (job progress), not the StreamEvents
        subscribers, whose wire contract has no kind for it."""
        ...

    def resume_point(self, after: int | None, epoch: str | None) -> tuple[int, bool]:
        """Where a client resumes, and whether it must read everything again (reset)."""
        ...

    def since(self, after: int, limit: int = RING_SIZE) -> list[NumberedEvent]:
        """The ring's events with an id above after, oldest first, at most limit."""
        ...

    async def wait_since(self, after: int, timeout_s: float,
                         limit: int = RING_SIZE) -> list[NumberedEvent]:
        """since(after), waiting up to timeout_s for the first one when there is none yet."""
        ...

    def subscribe(self) -> AsyncIterator[ServerEvent]:
        """Every event not ring_only from now on, for as long as the iterator is open."""
        ...


class LocalEventHub:
    """The hub in this process's memory: ids are this process's own."""

    def __init__(self, queue_size: int = 1000, ring_size: int = RING_SIZE,
                 epoch: str | None = None) -> None:
        self.epoch = epoch or secrets.token_hex(8)
        """This process's numbering: ids from another epoch mean nothing here."""
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[ServerEvent]] = set()
        self._ring: deque[NumberedEvent] = deque(maxlen=ring_size)
        self._last_id = 0
        self._waiters: set[asyncio.Future[None]] = set()

    @property
    def last_id(self) -> int:
        return self._last_id

    def publish(self, event: ServerEvent, *, ring_only: bool = False) -> None:
        """ring_only: for the web's numbered ring alone (job progress), not the StreamEvents
        subscribers, whose wire contract has no kind for it."""
        self.deliver(NumberedEvent(self._last_id + 1, event), ring_only=ring_only)

    def deliver(self, numbered: NumberedEvent, *, ring_only: bool = False) -> None:
        """Takes an event numbered elsewhere (a shared hub's table): ids must only go up."""
        self._last_id = numbered.event_id
        self._ring.append(numbered)
        event = numbered.event
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        if ring_only:
            return
        for q in self._subscribers:
            if q.full():
                q.get_nowait()
            q.put_nowait(event)

    def resume_point(self, after: int | None, epoch: str | None) -> tuple[int, bool]:
        """Where a client resumes, and whether it must read everything again (reset): its own
        after id in this epoch (or with no epoch named); the start of the ring when it names
        another epoch (a restarted server) or an id beyond the last one given; only what
        comes next when it names no id."""
        if after is None and epoch in (None, self.epoch):
            return self._last_id, False
        if (epoch is not None and epoch != self.epoch) or (after or 0) > self._last_id:
            return 0, True  # an id this process never gave: from another one
        return max(0, after or 0), False

    def since(self, after: int, limit: int = RING_SIZE) -> list[NumberedEvent]:
        """The ring's events with an id above after, oldest first, at most limit."""
        if after >= self._last_id:
            return []
        out = [n for n in self._ring if n.event_id > after]
        return out[:limit]

    async def wait_since(self, after: int, timeout_s: float,
                         limit: int = RING_SIZE) -> list[NumberedEvent]:
        """since(after), waiting up to timeout_s for the first one when there is none yet."""
        found = self.since(after, limit)
        if found or timeout_s <= 0:
            return found
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout_s)
        finally:
            self._waiters.discard(waiter)
        return self.since(after, limit)

    async def subscribe(self) -> AsyncIterator[ServerEvent]:
        q: asyncio.Queue[ServerEvent] = asyncio.Queue(self._queue_size)
        self._subscribers.add(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._subscribers.discard(q)
