"""The agent's composition root: builds the state DB, scanner, watcher, uploader and the
services, hands the services to the runtime (which owns their start and graceful stop), and
closes the state DB last."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from photonic.agent.bandwidth import TokenBucket
from photonic.agent.endpoints import Endpoints
from photonic.agent.ignore import IgnoreRules
from photonic.agent.metrics import AgentMetrics
from photonic.agent.pending_report import PendingShootReport
from photonic.agent.runtime import AgentRuntime
from photonic.agent.scan_runner import ScanRunner
from photonic.agent.scanner import Scanner
from photonic.agent.state import AgentStateMachine
from photonic.agent.statedb import AgentStateDB
from photonic.agent.status_service import StatusFileService, StatusReporter
from photonic.agent.statusfile import LiveStatus
from photonic.agent.sync_service import HEARTBEAT_INTERVAL_S, SyncService, SyncSettings
from photonic.agent.uploader import SyncTotals, Uploader, UploaderSettings
from photonic.config import AgentConfig
from photonic.logfmt import event
from photonic.writeprobe import write_problem

if TYPE_CHECKING:  # a daemon's parts: `agent --once` starts without them (issue 16)
    from prometheus_client import CollectorRegistry

    from photonic.agent.watch_service import WatchService

__all__ = ["HEARTBEAT_INTERVAL_S", "AgentApp", "RunSummary"]

log = logging.getLogger("photonic.agent")


@dataclass
class RunSummary:
    totals: SyncTotals
    files_hashed: int
    files_seen: int
    seconds: float

    def as_json(self) -> dict[str, object]:
        t = self.totals
        return {
            "files_uploaded": t.files_uploaded, "files_deduplicated": t.files_deduplicated,
            "files_sent": t.files_uploaded, "files_rejected": t.files_rejected,
            "files_failed": t.files_failed, "files_changed": t.files_changed,
            "conflicts": t.conflicts, "bytes_sent": t.bytes_sent,
            "raw_bytes_sent": t.raw_bytes_sent, "bytes_acknowledged": t.bytes_acknowledged,
            "files_hashed": self.files_hashed, "files_seen": self.files_seen,
            "seconds": round(self.seconds, 3),
        }


WORK_HANDBACK_S = 10.0
"""Beyond work.grace_s: an executor's kill (SIGTERM, then SIGKILL) and the Released reports."""


class AgentApp:
    """Wires the agent's parts; run() supervises its services until stop (or, with once,
    until the first scan is synced)."""

    def __init__(self, config: AgentConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        if registry is None and config.metrics_port:
            from prometheus_client import CollectorRegistry

            registry = CollectorRegistry()
        self.metrics = AgentMetrics(registry, config.agent_id)
        # Private: the queue, the status and ingest copies of photos live in it.
        config.buffer_path.mkdir(mode=0o700, parents=True, exist_ok=True)
        config.buffer_path.chmod(0o700)
        self.db = AgentStateDB(config.buffer_path / "agent.db")
        self.ignore = IgnoreRules(config.ignore_patterns)
        self.queued = asyncio.Event()  # set when a scan queued something: sync it now
        self.scans = ScanRunner(
            Scanner(self.db, config.watches, self.ignore, buffer_path=config.buffer_path,
                    max_buffer_size_bytes=config.max_buffer_size_bytes,
                    on_queued=self.queued.set),
            self.db, config.watches, self.metrics, config.agent_id, self.queued)
        self.uploader = Uploader(self.db, _uploader_settings(config),
                                 TokenBucket(config.max_bandwidth_bytes_per_s), self.metrics,
                                 self.scans.rescan)
        self.reporter = StatusReporter(
            config.buffer_path,
            LiveStatus(agent_id=config.agent_id, endpoints=list(config.server_endpoints)),
            lambda: self.uploader.totals)
        self.sm = AgentStateMachine(config.agent_id, self.metrics, self.reporter.state_changed)
        self.endpoints = Endpoints.from_config(config)
        self.reporter.write()

    async def run(self, stop: asyncio.Event, *, once: bool = False,
                  on_started: Callable[[], object] | None = None) -> RunSummary:
        """Runs until stop is set (or, with once, until the queue is empty); on_started is
        called once every service has started."""
        started = time.monotonic()
        try:
            await asyncio.to_thread(self._sweep_ingest_temporaries)
            requeued = await asyncio.to_thread(self.db.requeue_errors)
            if requeued:
                event(log, "requeued_failed_files", count=requeued)
            await self._runtime(once).run(stop, on_started)
        finally:
            self.reporter.finished()
            self.db.close()  # last: every service that used it has stopped
        return RunSummary(self.uploader.totals, self.scans.files_hashed, self.scans.files_seen,
                          time.monotonic() - started)

    def _runtime(self, once: bool) -> AgentRuntime:
        """The services, in start order (they stop in reverse): metrics first and last, the
        watcher before the first sync, sync (essential: its end ends the run) last.

        With work.enabled (and not `--once`) the work service takes jobs from every server;
        it stops after sync, and its grace covers letting running jobs finish (work.grace_s)
        plus killing an executor that does not and handing its job back."""
        runtime = AgentRuntime()
        if self.metrics.registry is not None:
            from photonic.agent.metrics_service import MetricsEndpointService

            runtime.add(MetricsEndpointService(self.metrics.registry, self._health,
                                               self.config.metrics_port))
        if not once:
            # The watcher owns files still being written; `--once` means "sync it now".
            runtime.add(self._watch_service())
            runtime.add(StatusFileService(self.reporter))
        if self.config.work.enabled and not once:
            from photonic.agent.work.wiring import build_work_service

            runtime.add(build_work_service(self.config, self.db, self.metrics.registry),
                        grace_s=self.config.work.grace_s + WORK_HANDBACK_S)
        runtime.add(self._sync_service(once), essential=True)
        return runtime

    def _watch_service(self) -> WatchService:
        from photonic.agent.watch_service import WatchService
        from photonic.agent.watcher import FolderWatcher

        c = self.config
        watcher = FolderWatcher(
            c.watches, self.scans.settled, settle_delay_s=c.settle_delay_s,
            closed_settle_delay_s=c.closed_settle_delay_s,
            incomplete_timeout_s=c.incomplete_timeout_s,
            ignore=lambda _watch, rel: self.ignore.is_ignored(rel, is_dir=False),
            on_root_changed=self.scans.root_changed)
        return WatchService(watcher, self.scans, settle_delay_s=c.settle_delay_s,
                            incomplete_timeout_s=c.incomplete_timeout_s,
                            rescan_interval_s=c.rescan_interval_s)

    def _sync_service(self, once: bool) -> SyncService:
        c = self.config
        settings = SyncSettings(agent_id=c.agent_id,
                                watch_names=tuple(w.name for w in c.watches),
                                retry_attempts=c.retry_attempts, once=once)
        return SyncService(settings, connector=self.endpoints, uploader=self.uploader,
                           db=self.db, sm=self.sm, metrics=self.metrics,
                           status=self.reporter.status, scans=self.scans, queued=self.queued,
                           pending=PendingShootReport(self.db, shoot_gap_s=c.shoot_gap_s))

    def _sweep_ingest_temporaries(self) -> None:
        """Half-copied ingest files from a crash are never queued; remove them."""
        for tmp in (self.config.buffer_path / "ingest" / "tmp").glob("*.part"):
            tmp.unlink(missing_ok=True)

    async def _health(self) -> dict[str, object]:
        """ok is False (503) when the buffer folder takes no write or its database fails."""
        problems: dict[str, str] = {}
        if problem := await asyncio.to_thread(write_problem, self.config.buffer_path):
            problems["buffer_writable"] = f"the buffer folder does not take writes: {problem}"
        try:
            stats = await asyncio.to_thread(self.db.queue_stats)
        except Exception as e:  # sqlite3 errors of any kind: the buffer database is broken
            problems["buffer_database"] = f"{type(e).__name__}: {e}"
            files = size = errored = -1
        else:
            files, size, errored = stats.files, stats.bytes, stats.errored
        return {"ok": not problems, "problems": problems, "state": self.sm.state.value,
                "queue_files": files, "queue_bytes": size, "errored": errored,
                "last_sync_unix": self.reporter.status.last_sync_unix}


def _uploader_settings(config: AgentConfig) -> UploaderSettings:
    return UploaderSettings(
        agent_id=config.agent_id, chunk_size_bytes=config.chunk_size_bytes,
        compression=config.compression, compression_min_saving=config.compression_min_saving,
        parallel_transfers=config.parallel_transfers, batch_size=config.batch_size,
        retry_attempts=config.retry_attempts, conflict_policy=config.conflict_resolution,
        shoot_gap_s=config.shoot_gap_s, buffer_path=config.buffer_path)
