"""One LISTEN connection per server for PostgreSQL notification channels: it reconnects with
backoff and says so after each (re)connection, since notifications sent while it was away are
lost and whoever relies on them must look again. Shared by the job queue's dispatch wake-ups
and the shared state's claims and events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping

from photonic.errors import PhotonicError
from photonic.logfmt import event
from photonic.server.pg_db import PgAsyncConnection, connect_async, safe_url

log = logging.getLogger("photonic.server.pg")

RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)
_CHANNEL_RE = re.compile(r"^[a-z_]{1,63}$")

Handler = Callable[[str], Awaitable[None]]
"""Given a notification's payload; runs on the listener's task, one at a time."""


class ChannelListener:
    """Listens on every channel of handlers; connected() runs after each (re)connection."""

    def __init__(self, url: str, handlers: Mapping[str, Handler],
                 connected: Callable[[], None], *, name: str = "pg-listen") -> None:
        for channel in handlers:  # our own names, spliced into LISTEN: no quoting needed
            if not _CHANNEL_RE.match(channel):
                raise ValueError(f"{channel!r} is not a channel name")
        self._url = url
        self._handlers = dict(handlers)
        self._connected = connected
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def start(self, timeout_s: float = 10.0) -> None:
        """Returns once LISTEN is in effect (or the first try failed: it keeps trying)."""
        self._task = asyncio.create_task(self._run(), name=self._name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), timeout_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                conn = await connect_async(self._url)
            except PhotonicError as e:
                self._listening.set()  # start() does not wait for a database that is down
                await self._retry(failures, e)
                failures += 1
                continue
            try:
                failures = await self._listen(conn)
            except Exception as e:  # a lost connection: listen again
                await self._retry(failures, e)
                failures += 1
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _listen(self, conn: PgAsyncConnection) -> int:
        for channel in self._handlers:
            await conn.execute(f"LISTEN {channel}".encode())
        self._listening.set()
        event(log, "pg_listening", listener=self._name, database=safe_url(self._url))
        self._connected()
        async for note in conn.notifies():
            handler = self._handlers.get(note.channel)
            if handler is None:
                continue
            try:
                await handler(note.payload)
            except Exception:
                log.exception("handling a %s notification failed", note.channel)
        return 0

    async def _retry(self, failures: int, error: BaseException) -> None:
        delay = RETRY_S[min(failures, len(RETRY_S) - 1)]
        event(log, "pg_listen_retry", listener=self._name, error=str(error)[:200],
              retry_s=delay)
        await asyncio.sleep(delay)
