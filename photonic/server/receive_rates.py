"""Each agent's upload rate as the server sees it: chunk bytes received over the last 30 s,
computed by the same RecentRate as the agent's own `photonic status`, for the dashboard's
rate and time left per agent. In memory, per server process: a rate, not a record."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from photonic.rates import RECENT_RATE_WINDOW_S, RecentRate

SAMPLE_S = 1.0
"""At most one (time, total) sample per agent per second, so a fast stream of small chunks
costs a sum, not a sample each."""


@dataclass
class _Received:
    sampled_s: float
    window: RecentRate
    total: int = 0
    rate: float = 0.0


class ReceiveRates:
    """Fed with each agent's received bytes; sampled lazily, when bytes arrive or a rate is
    read, no more than once per SAMPLE_S.

    RecentRate assumes samples come at a steady pace (the agent writes its status every
    second); here they come only with traffic. What keeps the window right: bytes not yet
    sampled always arrived within SAMPLE_S of the last sample (any later arrival would have
    taken one), so after a pause the total is recorded as it stood from last sample +
    SAMPLE_S on, flat, once per SAMPLE_S over at most the window (30 samples)."""

    def __init__(self, window_s: float = RECENT_RATE_WINDOW_S, sample_s: float = SAMPLE_S,
                 clock_s: Callable[[], float] = time.monotonic) -> None:
        self._window_s = window_s
        self._sample_s = sample_s
        self._clock_s = clock_s
        self._agents: dict[str, _Received] = {}

    def received(self, agent_id: str, size: float) -> None:
        """Counts size bytes from agent_id (a TappedCounter listener: on the event loop)."""
        now = self._clock_s()
        entry = self._agents.get(agent_id)
        if entry is None:
            entry = self._agents[agent_id] = _Received(now, RecentRate(self._window_s))
            entry.window.add(now, 0)
        elif now - entry.sampled_s >= self._sample_s:
            self._sample(entry, now)
        entry.total += int(size)

    def rate(self, agent_id: str) -> float:
        """Bytes per second from agent_id over the window; 0.0 for one never heard from."""
        entry = self._agents.get(agent_id)
        if entry is None:
            return 0.0
        now = self._clock_s()
        if now - entry.sampled_s >= self._sample_s:
            self._sample(entry, now)
        return entry.rate

    def _sample(self, entry: _Received, now: float) -> None:
        # What stood unsampled arrived before the last sample + sample_s; nothing came since.
        # That flat stretch is sampled as the agent's steady clock would have (only its part
        # within the window matters), so the window is never stretched over a pause.
        t = max(entry.sampled_s + self._sample_s, now - self._window_s)
        while t < now:
            entry.window.add(t, entry.total)
            t += self._sample_s
        entry.rate = entry.window.add(now, entry.total)
        entry.sampled_s = now
