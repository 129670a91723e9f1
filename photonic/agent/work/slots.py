"""The worker's job slots, shared by the Work streams of every server: together they never
hold more than work.max_concurrent jobs, which is the promise made in every Hello."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


class SlotBook:
    """Counts the jobs each endpoint holds. slots_for() is what a stream may hold now (its
    own jobs plus the free slots), so a take on one stream lowers only the others' figure;
    every change is announced to the listeners, which send Capacity where it moved."""

    def __init__(self, max_concurrent: int) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.max_concurrent = max_concurrent
        self._held: Counter[str] = Counter()
        self._accepting = True
        self._listeners: list[Callable[[], None]] = []

    @property
    def running(self) -> int:
        return sum(self._held.values())

    @property
    def free(self) -> int:
        return max(0, self.max_concurrent - self.running) if self._accepting else 0

    @property
    def accepting(self) -> bool:
        return self._accepting

    def listen(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def slots_for(self, endpoint: str) -> int:
        """The Capacity figure for endpoint's stream: 0 once closed (shutting down)."""
        if not self._accepting:
            return 0
        return min(self.max_concurrent, self._held[endpoint] + self.free)

    def take(self, endpoint: str) -> bool:
        """One slot for a job of endpoint, or False when none is free (or closed)."""
        if self.free <= 0:
            return False
        self._held[endpoint] += 1
        self._announce()
        return True

    def give_back(self, endpoint: str) -> None:
        self._held[endpoint] -= 1
        if self._held[endpoint] <= 0:
            del self._held[endpoint]
        self._announce()

    def close(self) -> None:
        """Takes no more jobs: every stream's figure drops to 0."""
        self._accepting = False
        self._announce()

    def _announce(self) -> None:
        for callback in self._listeners:
            callback()
