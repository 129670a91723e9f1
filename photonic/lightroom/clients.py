"""The plugins connected to the bridge: each client's bounded message queue, its long-poll
waiter, when it was last heard from and what it registered as. Knows nothing of HTTP or of
what a job does; the bridge service decides what to send and when a client goes."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from photonic.errors import LimitExceeded, NotFound
from photonic.lightroom.protocol import JOB_NOTICES, dropped

JobKey = tuple[str, int]
"""A job attempt: (job_id, attempt)."""
Message = dict[str, object]
MAX_CLIENTS = 32
"""Clients at once: a plugin that handshakes in a loop cannot grow the agent without bound."""


@dataclass(eq=False)
class Client:
    """One plugin instance (one Lightroom catalog) between its handshake and its removal."""

    client_id: str
    client_type: str
    last_seen: float
    queue_limit: int
    registered: bool = False
    lightroom_version: str | None = None
    catalog: str = ""
    plugin_version: str = ""
    subscriptions: set[str] = field(default_factory=set)
    jobs: set[JobKey] = field(default_factory=set)
    dropped_total: int = 0
    _unreported: int = 0
    _queue: deque[Message] = field(default_factory=deque)
    _waiter: asyncio.Future[None] | None = None

    @property
    def takes_jobs(self) -> bool:
        return self.registered and "jobs" in self.subscriptions

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def polling(self) -> bool:
        """A long-poll is waiting: the client is alive even if its last call was long ago."""
        return self._waiter is not None and not self._waiter.done()

    def push(self, message: Message) -> None:
        """Queues a message. A full queue drops its oldest message that is not a job notice
        and counts it (the client learns the count in a `dropped` notice); a job notice is
        never dropped, so it may take the queue past its limit rather than lose a job."""
        if len(self._queue) >= self.queue_limit:
            oldest = next((i for i, m in enumerate(self._queue)
                           if m.get("type") not in JOB_NOTICES), None)
            if oldest is not None:
                del self._queue[oldest]
                self._count_drop()
            elif message.get("type") not in JOB_NOTICES:
                self._count_drop()
                self.wake()
                return
        self._queue.append(message)
        self.wake()

    def withdraw(self, key: JobKey) -> bool:
        """Takes back a job_assigned the client has not polled yet; False if it was delivered."""
        for i, m in enumerate(self._queue):
            if m.get("type") == "job_assigned" and (m.get("job_id"), m.get("attempt")) == key:
                del self._queue[i]
                return True
        return False

    def take(self) -> list[Message]:
        """Everything waiting, oldest first, after a `dropped` notice when some were lost."""
        taken = [dropped(self._unreported)] if self._unreported else []
        self._unreported = 0
        taken.extend(self._queue)
        self._queue.clear()
        return taken

    async def wait(self, timeout_s: float) -> bool:
        """Waits until a message waits or timeout_s passes. False when a newer poll from the
        same client replaced this one: this one then answers empty and the newer one gets
        the messages (a plugin that gave up on a poll and started another loses nothing)."""
        if self._queue or self._unreported:
            return True
        previous, waiter = self._waiter, asyncio.get_running_loop().create_future()
        self._waiter = waiter
        if previous is not None and not previous.done():
            previous.set_result(None)
        try:
            await asyncio.wait((waiter,), timeout=timeout_s)
        finally:
            replaced = self._waiter is not waiter
            if not replaced:
                self._waiter = None
            if not waiter.done():
                waiter.cancel()
        return not replaced

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _count_drop(self) -> None:
        self._unreported += 1
        self.dropped_total += 1


class ClientRegistry:
    """The connected clients by id, with the clock that says which have gone silent."""

    def __init__(self, *, queue_limit: int = 100, client_timeout_s: float = 300.0,
                 max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if queue_limit < 1 or client_timeout_s <= 0:
            raise ValueError("queue_limit and client_timeout_s must be positive")
        self.queue_limit = queue_limit
        self.client_timeout_s = client_timeout_s
        self._max_clients = max_clients
        self._clock = clock
        self._clients: dict[str, Client] = {}

    def __iter__(self) -> Iterator[Client]:
        return iter(list(self._clients.values()))

    def add(self, client_type: str) -> Client:
        if len(self._clients) >= self._max_clients:
            raise LimitExceeded(f"{self._max_clients} clients are connected already: "
                                "disconnect one, or wait for silent ones to be cleaned up")
        client = Client(secrets.token_urlsafe(12), client_type, self._clock(), self.queue_limit)
        self._clients[client.client_id] = client
        return client

    def get(self, client_id: str) -> Client:
        """The client, marked alive now; NotFound once it disconnected or was cleaned up."""
        client = self._clients.get(client_id)
        if client is None:
            raise NotFound(f"no client {client_id}: it disconnected or was cleaned up after "
                           f"{self.client_timeout_s:g} s of silence; handshake again")
        client.last_seen = self._clock()
        return client

    def find(self, client_id: str) -> Client | None:
        """The client if still connected, without counting this as hearing from it."""
        return self._clients.get(client_id)

    def remove(self, client_id: str) -> Client | None:
        """Forgets the client and wakes its poll (which then finds it gone)."""
        client = self._clients.pop(client_id, None)
        if client is not None:
            client.wake()
        return client

    def stale(self) -> list[Client]:
        """Clients that neither polled nor sent for client_timeout_s and are not polling now."""
        deadline = self._clock() - self.client_timeout_s
        return [c for c in self._clients.values() if c.last_seen < deadline and not c.polling]

    def job_taker(self) -> Client | None:
        """The client to offer the next job: registered, subscribed to jobs, holding the fewest
        jobs, most recently heard from among equals."""
        takers = [c for c in self._clients.values() if c.takes_jobs]
        return min(takers, key=lambda c: (len(c.jobs), -c.last_seen), default=None)

    def lightroom_version(self) -> str | None:
        """The newest Lightroom version among clients that take jobs."""
        versions = [c.lightroom_version for c in self._clients.values()
                    if c.takes_jobs and c.lightroom_version]
        return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")), default=None)

    def broadcast(self, channel: str, message: Message) -> None:
        for client in self._clients.values():
            if channel in client.subscriptions:
                client.push(message)
