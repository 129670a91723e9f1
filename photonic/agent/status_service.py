"""The agent's live status file (`<buffer_path>/status.json`, read by `photonic status`):
the reporter that keeps it, and the service that rewrites it every second."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from photonic.agent.statusfile import LiveStatus, write_status
from photonic.agent.uploader import SyncTotals
from photonic.models import AgentState

log = logging.getLogger("photonic.agent")

STATUS_INTERVAL_S = 1.0
RECENT_RATE_WINDOW_S = 30.0
"""`photonic status` shows the rate over this window, so it falls to 0 soon after work stops
(a rate averaged since start kept falling slowly while nothing happened)."""


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


class StatusReporter:
    """Owns the LiveStatus the other parts update, and writes it out."""

    def __init__(self, buffer_path: Path, status: LiveStatus,
                 totals: Callable[[], SyncTotals],
                 clock_s: Callable[[], float] = time.monotonic) -> None:
        self._buffer_path = buffer_path
        self.status = status
        self._totals = totals
        self._clock_s = clock_s
        self._recent = RecentRate()

    def state_changed(self, state: AgentState, reason: str) -> None:
        """The state machine's listener: a transition is written at once."""
        self.status.state = state.value
        self.status.state_since_unix = time.time()
        self.status.reason = reason
        self.write()

    def write(self) -> None:
        t = self._totals()
        self.status.session_files_done = t.files_done
        self.status.session_bytes_done = t.bytes_acknowledged
        self.status.bytes_sent = t.bytes_sent
        self.status.recent_rate_bytes_per_s = self._recent.add(self._clock_s(),
                                                               t.bytes_acknowledged)
        try:
            write_status(self._buffer_path, self.status)
        except OSError as exc:
            log.warning("could not write status file", extra={"error": str(exc)})

    def finished(self) -> None:
        """The agent is stopping: the file says so, for `photonic status`."""
        self.status.running = False
        self.write()


class StatusFileService:
    """Rewrites the status file every interval_s, so progress shows while a drain runs."""

    name = "status-file"

    def __init__(self, reporter: StatusReporter, interval_s: float = STATUS_INTERVAL_S) -> None:
        self._reporter = reporter
        self._interval_s = interval_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._reporter.write()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)
