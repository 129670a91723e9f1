"""A token bucket that holds the agent's upload under `network.max_bandwidth`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """Shared by every stream of the agent; 0 bytes/s means unlimited."""

    def __init__(self, rate_bytes_per_s: int, *, burst_s: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_bytes_per_s
        self._capacity = max(rate_bytes_per_s * burst_s, 1.0)
        self._tokens = self._capacity
        self._clock = clock
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def take(self, nbytes: int) -> None:
        if self._rate <= 0:
            return
        async with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            self._tokens -= nbytes
            if self._tokens < 0:
                # Debt is paid by waiting: a chunk larger than the burst still goes through.
                await asyncio.sleep(-self._tokens / self._rate)
