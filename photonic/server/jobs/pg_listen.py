"""LISTEN/NOTIFY between servers that share a PostgreSQL job queue, so that dispatch stays
push-based across servers: a job submitted or handed back on one server wakes the dispatchers
of all; a leased attempt that must stop (cancelled, timed out) reaches the server whose worker
runs it. Notifications are sent by PgJobQueue inside the transaction that made the change,
so they arrive only once it committed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence

from photonic.errors import PhotonicError
from photonic.logfmt import event
from photonic.server.pg_db import PgAsyncConnection, connect_async, safe_url

log = logging.getLogger("photonic.server.jobs")

CHANNEL = "photonic_jobs"
_IDS_PER_NOTIFY = 200
"""Job ids per notification: 200 ids of 20 characters stay far under PostgreSQL's 8000-byte
payload limit."""
RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)

Wake = Callable[[str], None]
"""Told why (`pending`: a job became runnable; `connected`: notifications may have been
missed while the listener was not connected, so look again)."""
Stop = Callable[[Sequence[str]], Awaitable[None]]
"""Told of jobs whose current attempt must stop: cancel it where a worker of ours runs it."""


def wake_payload(origin: str) -> str:
    return json.dumps({"o": origin, "wake": "pending"})


def stop_payloads(origin: str, job_ids: Sequence[str]) -> list[str]:
    return [json.dumps({"o": origin, "stop": list(job_ids[i:i + _IDS_PER_NOTIFY])})
            for i in range(0, len(job_ids), _IDS_PER_NOTIFY)]


class JobNotifications:
    """One listening connection per server, on the event loop; reconnects with backoff and
    wakes its dispatcher after each (re)connection, since notifications sent meanwhile are
    lost. Its own queue's notifications (same origin) are skipped: the dispatcher that made
    the change already knows."""

    def __init__(self, url: str, origin: str, *, wake: Wake, stop: Stop) -> None:
        self._url = url
        self._origin = origin
        self._wake = wake
        self._stop = stop
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.received = 0

    async def start(self, timeout_s: float = 10.0) -> None:
        """Returns once LISTEN is in effect (or the first try failed: it keeps trying)."""
        self._task = asyncio.create_task(self._run(), name="jobs-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), timeout_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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
        await conn.execute(f"LISTEN {CHANNEL}")
        self._listening.set()
        event(log, "jobs_listening", database=safe_url(self._url))
        self._wake("connected")
        async for note in conn.notifies():
            await self._handle(note.payload)
        return 0

    async def _handle(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except json.JSONDecodeError:
            return
        if not isinstance(message, dict) or message.get("o") == self._origin:
            return
        self.received += 1
        if message.get("wake"):
            self._wake(str(message["wake"]))
        ids = message.get("stop")
        if isinstance(ids, list) and ids:
            try:
                await self._stop([str(i) for i in ids])
            except Exception:
                log.exception("forwarding a stop from another server failed")

    async def _retry(self, failures: int, error: BaseException) -> None:
        delay = RETRY_S[min(failures, len(RETRY_S) - 1)]
        event(log, "jobs_listen_retry", error=str(error)[:200], retry_s=delay)
        await asyncio.sleep(delay)
