"""The agent's live status file (`<buffer_path>/status.json`, read by `photonic status`):
the reporter that keeps it, and the service that rewrites it every second."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from photonic.agent.statusfile import LiveStatus, write_status
from photonic.agent.uploader import SyncTotals
from photonic.models import AgentState
from photonic.rates import RecentRate

log = logging.getLogger("photonic.agent")

STATUS_INTERVAL_S = 1.0
"""How often the status file is rewritten: also the sampling interval of its recent rate."""


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
