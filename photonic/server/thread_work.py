"""Worker threads that work on something a cleanup must not touch while they run (a partial
file, a claimed content): a thread cannot be stopped, so a cancelled await of it leaves it
running, and the cleanup waits for it first."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ThreadWork:
    """One piece of work's threads, one at a time. An await of run() that is cancelled (the
    call was cut) leaves its thread running; settled() waits for it, so nothing cleans up a
    partial, or releases its claim, while a thread still writes it."""

    def __init__(self) -> None:
        self._last: asyncio.Future[Any] | None = None

    async def run(self, work: Callable[..., T], *args: object) -> T:
        running = asyncio.ensure_future(asyncio.to_thread(work, *args))
        self._last = running
        return await asyncio.shield(running)

    async def settled(self) -> None:
        last = self._last
        if last is None:
            return
        if not last.done():
            await asyncio.wait([last])
        if not last.cancelled():
            last.exception()  # retrieved: its awaiter may have been cancelled
