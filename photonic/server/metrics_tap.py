"""A labelled Prometheus counter whose increments are also told to listeners, so a part of
the application layer (the per-agent receive rate) can follow a count where it is made
without the counting code knowing of it."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter

Listener = Callable[[str, float], None]
"""Told (first label value, amount) of every increment, on the incrementing thread."""


class TappedCounter:
    """Stands in for a labelled Counter where only `.labels(...).inc(n)` is used; the
    Counter itself stays in its registry, scraped as before."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self._listeners: list[Listener] = []

    def tap(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def labels(self, *values: str) -> TappedChild:
        return TappedChild(self.counter.labels(*values), values[0] if values else "",
                           self._listeners)


class TappedChild:
    def __init__(self, child: Counter, label: str, listeners: list[Listener]) -> None:
        self._child = child
        self._label = label
        self._listeners = listeners

    def inc(self, amount: float = 1) -> None:
        self._child.inc(amount)
        for listener in self._listeners:
            listener(self._label, amount)
