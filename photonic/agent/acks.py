"""Group commit of the server's acknowledgements into the agent's queue database.

Each acknowledgement releases a queue entry with a durable commit. One commit per photo put
an fsync (and a thread hop) between every reply the agent reads; small photos spent more
time there than on the wire. Here acknowledgements are recorded in groups: while one group
commits, the next gathers, so under load one fsync covers many photos and when idle a lone
acknowledgement is committed at once. Losing a group to a crash costs a re-offer that the
server answers HAVE, never a photo."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from photonic.agent.statedb import PendingFile


@dataclass(frozen=True)
class Ack:
    """The server holds `file` durably: stored now, or already held (dedup)."""

    file: PendingFile
    dedup: bool
    conflict: bool


class AckRecorder:
    """Collects acknowledgements and records them with `record`, one group at a time."""

    def __init__(self, record: Callable[[list[Ack]], Awaitable[None]]) -> None:
        self._record = record
        self._waiting: list[Ack] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, ack: Ack) -> None:
        self._waiting.append(ack)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            await self._record(group)

    async def flush(self) -> None:
        """Returns when every acknowledgement added so far is recorded; raises the error of a
        group that could not be (those photos stay queued and are offered again)."""
        while self._writer is not None:
            writer = self._writer
            try:
                await asyncio.shield(writer)
            finally:
                if self._writer is writer:
                    self._writer = None
                    if self._waiting:  # left behind by a failed group
                        self._writer = asyncio.create_task(self._write())
