"""LISTEN/NOTIFY between servers that share a PostgreSQL job queue, so that dispatch stays
push-based across servers: a job submitted or handed back on one server wakes the dispatchers
of all; a leased attempt that must stop (cancelled, timed out) reaches the server whose worker
runs it. Notifications are sent by PgJobQueue inside the transaction that made the change,
so they arrive only once it committed."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence

from photonic.server.pg_channels import ChannelListener

log = logging.getLogger("photonic.server.jobs")

CHANNEL = "photonic_jobs"
_IDS_PER_NOTIFY = 200
"""Job ids per notification: 200 ids of 20 characters stay far under PostgreSQL's 8000-byte
payload limit."""

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
    """The job channel on this server's listener (pg_channels): wakes its dispatcher after
    each (re)connection, since notifications sent meanwhile are lost. Its own queue's
    notifications (same origin) are skipped: the dispatcher that made the change already
    knows."""

    def __init__(self, url: str, origin: str, *, wake: Wake, stop: Stop) -> None:
        self._origin = origin
        self._wake = wake
        self._stop = stop
        self._listener = ChannelListener(url, {CHANNEL: self._handle},
                                         lambda: wake("connected"), name="jobs-listen")
        self.received = 0

    async def start(self, timeout_s: float = 10.0) -> None:
        """Returns once LISTEN is in effect (or the first try failed: it keeps trying)."""
        await self._listener.start(timeout_s)

    async def stop(self) -> None:
        await self._listener.stop()

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
