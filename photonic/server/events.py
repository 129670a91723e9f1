"""Fan-out of server events to StreamEvents subscribers, with bounded per-subscriber queues."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


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


class EventHub:
    """A slow subscriber loses its oldest events rather than slowing ingest down."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[ServerEvent]] = set()

    def publish(self, event: ServerEvent) -> None:
        for q in self._subscribers:
            if q.full():
                q.get_nowait()
            q.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[ServerEvent]:
        q: asyncio.Queue[ServerEvent] = asyncio.Queue(self._queue_size)
        self._subscribers.add(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._subscribers.discard(q)
