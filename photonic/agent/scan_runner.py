"""Runs the scanner for everyone who asks (the reconcile loop, the watcher's events, a watch
folder's return, `--once`, the uploader's rescans), counts and logs what it found, and signals
the sync service when something new is queued."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from photonic.agent.metrics import AgentMetrics
from photonic.agent.scanner import Scanner, ScanReport
from photonic.agent.statedb import AgentStateDB, PendingFile
from photonic.config import WatchConfig
from photonic.logfmt import event

if TYPE_CHECKING:  # the watcher is a daemon's; `agent --once` runs without it (issue 16)
    from photonic.agent.watcher import SettledFile

log = logging.getLogger("photonic.agent")

_SKIPPED_LOGGED = 20


class ScanRunner:
    """The one way into the scanner; `queued` is set whenever a scan queued something."""

    def __init__(self, scanner: Scanner, db: AgentStateDB, watches: Sequence[WatchConfig],
                 metrics: AgentMetrics, agent_id: str, queued: asyncio.Event) -> None:
        self.scanner = scanner
        self._db = db
        self._watches = list(watches)
        self._metrics = metrics
        self._agent_id = agent_id
        self._queued = queued
        self._lock = asyncio.Lock()  # a folder's return is scanned, but not twice at once
        self.files_hashed = 0
        self.files_seen = 0

    async def scan_all(self, only: str | None = None) -> list[ScanReport]:
        """Scans every watch (or the one named only) and logs and counts what it found."""
        async with self._lock:
            if only is None:
                reports = await self.scanner.scan_all()
            else:
                reports = [await self.scanner.scan_watch(w)
                           for w in self._watches if w.name == only]
        for r in reports:
            self._note(r)
        return reports

    def _note(self, r: ScanReport) -> None:
        self.files_hashed += r.files_hashed
        self.files_seen += r.files_seen
        self._metrics.files_hashed.inc(r.files_hashed)
        event(log, "scan_done", agent=self._agent_id, watch=r.watch_name,
              seen=r.files_seen, hashed=r.files_hashed, queued=r.files_queued,
              skipped=r.files_skipped, missing=r.missing, frozen=r.frozen)
        for rel, why in r.skipped[:_SKIPPED_LOGGED]:
            event(log, "file_skipped", logging.WARNING, watch=r.watch_name, path=rel,
                  reason=why)
        if r.files_queued:
            self._queued.set()

    async def root_changed(self, watch_name: str, _present: bool) -> None:
        """A watch folder vanished or came back: scanning it now records it missing, or picks
        up the files copied into it before its new watch existed and brings it back to OK."""
        await self.scan_all(only=watch_name)

    async def settled(self, settled: Sequence[SettledFile]) -> None:
        """The watcher saw files stop changing: hash and queue them, each watch's together."""
        by_watch: dict[str, list[tuple[Path, bool]]] = {}
        for f in settled:
            by_watch.setdefault(f.watch_name, []).append((f.path, f.incomplete))
        for watch_name, paths in by_watch.items():
            if await self.scanner.scan_paths(watch_name, paths):
                self._queued.set()

    async def resend(self, shas: Sequence[str]) -> None:
        """The server lost these contents: queue again the files that hold them."""
        if await self.scanner.resend(shas):
            self._queued.set()  # queued again: sync them now, not at the next heartbeat

    async def rescan(self, f: PendingFile) -> bool:
        """Hashes a queued file again, even if its size and mtime look unchanged; True if it
        was queued anew or dropped from the queue (its file and source both gone)."""
        watch = next((w for w in self._watches if w.name == f.watch_name), None)
        if watch is None:
            return False
        original = watch.path / f.relative_path
        if not original.exists() and not f.source_path.exists():
            await asyncio.to_thread(self._db.drop_pending, f.id, "file vanished before upload")
            return True
        if await self.scanner.scan_path(f.watch_name, original, force=True):
            self._queued.set()
            return True
        return False
