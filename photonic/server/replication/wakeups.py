"""Wakes replication loops when the catalog gains a version, through the server's event hub
(every commit publishes there once it is durable): no polling between commits."""

from __future__ import annotations

import time

from photonic.server.events import EventHub

WAKING_KINDS = frozenset({"file_committed", "file_deduplicated", "conflict", "job"})
"""Events that may come with a new version (a new path, a new version of one, a conflict's
side version, a job's outputs); heartbeats and agent states do not wake anyone."""


class CommitWakeups:
    def __init__(self, hub: EventHub) -> None:
        self._hub = hub

    def mark(self) -> int:
        """Take it before reading the queue: a commit after the read wakes wait(mark)."""
        return self._hub.last_id

    async def wait(self, after: int, timeout_s: float) -> None:
        """Returns once an event of WAKING_KINDS came after `after`, or after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            found = await self._hub.wait_since(after, left)
            if not found:
                return
            if any(n.event.kind in WAKING_KINDS for n in found):
                return
            after = found[-1].event_id
