"""Transfer rates over a recent window and the time left at that rate: what `photonic status`
shows on an agent and what the dashboard shows for each agent on the server, computed the
same way on both sides."""

from __future__ import annotations

from collections import deque

RECENT_RATE_WINDOW_S = 30.0
"""Rates are over this window, so they fall to 0 soon after work stops (a rate averaged
since start kept falling slowly while nothing happened)."""


class RecentRate:
    """Bytes per second over the last window_s, from (time, running total) samples."""

    def __init__(self, window_s: float = RECENT_RATE_WINDOW_S) -> None:
        self._window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now_s: float, total_bytes: int) -> float:
        """Records the running total at now_s and returns the rate over the window."""
        if self._samples and total_bytes < self._samples[-1][1]:
            self._samples.clear()  # a new session's totals start again from 0
        self._samples.append((now_s, total_bytes))
        # Keep one sample at or before the window's start, so the window is covered whole.
        while len(self._samples) > 2 and self._samples[1][0] <= now_s - self._window_s:
            self._samples.popleft()
        first_s, first_bytes = self._samples[0]
        span_s = now_s - first_s
        if span_s <= 0:
            return 0.0
        return (total_bytes - first_bytes) / span_s


def eta_s(pending_bytes: int, rate_bytes_per_s: float) -> float | None:
    """Seconds until pending_bytes are through at the rate; None (unknown) when nothing is
    pending or nothing moved over the window."""
    if rate_bytes_per_s > 0 and pending_bytes > 0:
        return pending_bytes / rate_bytes_per_s
    return None
