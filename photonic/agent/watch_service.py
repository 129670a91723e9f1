"""The watcher and the periodic reconcile scan as one service: the watcher makes new photos
prompt, the reconcile scan catches whatever its events missed."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from photonic.agent.runtime import unless_stopped
from photonic.agent.scan_runner import ScanRunner
from photonic.agent.watcher import FolderWatcher

log = logging.getLogger("photonic.agent")


class WatchService:
    """Watches the folders and reconciles them every rescan_interval_s until stopped."""

    name = "watcher"

    def __init__(self, watcher: FolderWatcher, scans: ScanRunner, *, settle_delay_s: float,
                 incomplete_timeout_s: float, rescan_interval_s: float) -> None:
        self._watcher = watcher
        self._scans = scans
        self._settle_delay_s = settle_delay_s
        self._incomplete_timeout_s = incomplete_timeout_s
        self._rescan_interval_s = rescan_interval_s

    async def start(self) -> None:
        """Before the first sync: the watcher owns files still being written (the reconcile
        scan hands them over), and its observers are in place."""
        self._scans.scanner.defer_files_in_flight(
            settle_delay_s=self._settle_delay_s, incomplete_timeout_s=self._incomplete_timeout_s,
            on_deferred=self._watcher.track)
        await self._watcher.start()

    async def run(self, stop: asyncio.Event) -> None:
        await self._watcher.start()  # at once if start() ran; again after a restart
        try:
            while not stop.is_set():
                try:
                    await unless_stopped(self._scans.scan_all(), stop)
                except Exception:
                    log.exception("reconcile scan failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._rescan_interval_s)
        finally:
            await self._watcher.stop()
