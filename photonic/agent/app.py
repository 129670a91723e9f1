"""The agent's composition root: wires state DB, scanner, watcher, uploader and the connection
loop, and owns their start and graceful stop (the state DB closes last)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from photonic import errors
from photonic.agent.backoff import Backoff
from photonic.agent.bandwidth import TokenBucket
from photonic.agent.client import ServerClient, connect_first
from photonic.agent.ignore import IgnoreRules
from photonic.agent.metrics import AgentMetrics
from photonic.agent.scanner import Scanner, ScanReport
from photonic.agent.state import AgentStateMachine
from photonic.agent.statedb import AgentStateDB, PendingFile, WatchStatus
from photonic.agent.statusfile import LiveStatus, write_status
from photonic.agent.uploader import SyncTotals, Uploader, UploaderSettings
from photonic.agent.watcher import FolderWatcher, SettledFile
from photonic.config import AgentConfig
from photonic.httpserve import HttpEndpoint, Response
from photonic.logfmt import event
from photonic.models import AgentState
from photonic.tls import channel_credentials

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger("photonic.agent")

ONCE_GATHER_S = 0.1
HEARTBEAT_INTERVAL_S = 10.0
STATUS_INTERVAL_S = 1.0


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


class AgentApp:
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
        self._wake = asyncio.Event()
        self.scanner = Scanner(self.db, config.watches, self.ignore,
                               buffer_path=config.buffer_path,
                               max_buffer_size_bytes=config.max_buffer_size_bytes,
                               on_queued=self._wake.set)
        self.status = LiveStatus(agent_id=config.agent_id,
                                 endpoints=list(config.server_endpoints))
        self.sm = AgentStateMachine(config.agent_id, self.metrics, self._state_changed)
        self.uploader = Uploader(self.db, UploaderSettings(
            agent_id=config.agent_id, chunk_size_bytes=config.chunk_size_bytes,
            compression=config.compression,
            compression_min_saving=config.compression_min_saving,
            parallel_transfers=config.parallel_transfers, batch_size=config.batch_size,
            retry_attempts=config.retry_attempts,
            conflict_policy=config.conflict_resolution, shoot_gap_s=config.shoot_gap_s,
            buffer_path=config.buffer_path),
            TokenBucket(config.max_bandwidth_bytes_per_s), self.metrics, self._rescan)
        self.watcher = FolderWatcher(
            config.watches, self._on_settled, settle_delay_s=config.settle_delay_s,
            closed_settle_delay_s=config.closed_settle_delay_s,
            incomplete_timeout_s=config.incomplete_timeout_s,
            ignore=lambda _watch, rel: self.ignore.is_ignored(rel, is_dir=False),
            on_root_changed=self._watch_root_changed)
        self._scan_lock = asyncio.Lock()  # a folder's return is scanned, but not twice at once
        self._initial_scan: asyncio.Task[list[ScanReport]] | None = None
        self._http: HttpEndpoint | None = None
        self._files_hashed = 0
        self._files_seen = 0
        self._write_status()

    # lifecycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> RunSummary:
        """Runs until stop is set (or, with once, until the queue is empty)."""
        started = time.monotonic()
        await asyncio.to_thread(self._sweep_ingest_temporaries)
        requeued = await asyncio.to_thread(self.db.requeue_errors)
        if requeued:
            event(log, "requeued_failed_files", count=requeued)
        if self.config.metrics_port:
            self._http = HttpEndpoint({"/metrics": self._metrics_page,
                                       "/healthz": self._healthz})
            await self._http.start("127.0.0.1", self.config.metrics_port)
        background: list[asyncio.Task[None]] = []
        try:
            if once:
                # Uploading starts with the first files queued, while the scan goes on: the
                # hashing of one folder overlaps the sending of the one before.
                self._initial_scan = asyncio.create_task(self._scan_all())
            else:
                # The watcher owns files still being written; `--once` means "sync it now".
                self.scanner.defer_files_in_flight(
                    settle_delay_s=self.config.settle_delay_s,
                    incomplete_timeout_s=self.config.incomplete_timeout_s,
                    on_deferred=self.watcher.track)
                await self.watcher.start()
                background.append(asyncio.create_task(self._reconcile_loop(stop)))
                background.append(asyncio.create_task(self._status_loop(stop)))
            await self._connection_loop(stop, once)
        finally:
            ending: list[asyncio.Task[Any]] = [*background]
            if self._initial_scan is not None:
                ending.append(self._initial_scan)
            for task in ending:
                task.cancel()
            await asyncio.gather(*ending, return_exceptions=True)
            await self.watcher.stop()
            if self._http is not None:
                await self._http.stop()
            self.status.running = False
            self._write_status()
            self.db.close()
        return RunSummary(self.uploader.totals, self._files_hashed, self._files_seen,
                          time.monotonic() - started)

    def _sweep_ingest_temporaries(self) -> None:
        """Half-copied ingest files from a crash are never queued; remove them."""
        for tmp in (self.config.buffer_path / "ingest" / "tmp").glob("*.part"):
            tmp.unlink(missing_ok=True)

    async def _connection_loop(self, stop: asyncio.Event, once: bool) -> None:
        backoff = Backoff()
        creds = channel_credentials(self.config.security.cert_path,
                                    self.config.security.key_path, self.config.security.ca_path)
        while not stop.is_set():
            client: ServerClient | None = None
            try:
                self.sm.to(AgentState.CONNECTING, "dialing " + ", ".join(
                    self.config.server_endpoints))
                client = await connect_first(self.config.server_endpoints, creds,
                                             self.config.agent_id)
                registration = await client.register([w.name for w in self.config.watches])
                self.status.endpoint = client.endpoint
                backoff.reset()
                event(log, "connected", agent=self.config.agent_id, endpoint=client.endpoint,
                      scopes=",".join(registration.scopes))
                if await self._serve(client, stop, once, registration.paused):
                    return
            except (errors.Transient, errors.LimitExceeded, errors.InvalidInput,
                    errors.IntegrityError, errors.NotFound, errors.StorageFull) as exc:
                self._went_offline(str(exc))
            except (errors.AuthError, grpc.aio.AioRpcError) as exc:
                self.sm.to(AgentState.ERROR, str(exc))
                event(log, "refused_by_server", logging.ERROR, agent=self.config.agent_id,
                      reason=str(exc))
            finally:
                if client is not None:
                    await client.close()
            if self.sm.state is not AgentState.OFFLINE:
                self.sm.to(AgentState.OFFLINE, "reconnecting")
            await _wait(stop, backoff.next_delay_s())

    def _went_offline(self, reason: str) -> None:
        self.metrics.reconnects.inc()
        self.sm.to(AgentState.OFFLINE, reason)

    async def _serve(self, client: ServerClient, stop: asyncio.Event, once: bool,
                     paused: bool) -> bool:
        """Syncs and monitors over one connection; True when a `once` run is complete."""
        rounds = 0
        while not stop.is_set():
            self._wake.clear()
            rounds += 1
            stats = await asyncio.to_thread(self.db.queue_stats)
            if stats.files - stats.errored > 0 and not paused:
                self.sm.to(AgentState.SYNCING, f"{stats.files - stats.errored} files queued")
                await self.uploader.drain(client)
                self.status.last_sync_unix = time.time()
            conflicted = await self._open_conflicts(client)
            self.sm.to(AgentState.CONFLICT if conflicted else AgentState.MONITORING,
                       "conflicts need a person" if conflicted else "queue drained")
            paused = await self._heartbeat(client)
            if once:
                if await self._initial_scan_running():
                    rounds = 0  # rounds count retries of what is queued, not waits for the scan
                    continue
                left = await asyncio.to_thread(self.db.queue_stats)
                if left.files - left.errored == 0 or rounds > self.config.retry_attempts:
                    return True
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait_wake_or_stop(stop), HEARTBEAT_INTERVAL_S)
        return False

    async def _initial_scan_running(self) -> bool:
        """For `--once`: True (after waiting for more files or the scan's end) while the
        first scan still runs; raises what the scan raised."""
        scan = self._initial_scan
        if scan is None:
            return False
        if not scan.done():
            wake = asyncio.create_task(self._wake.wait())
            try:
                await asyncio.wait([scan, wake], return_when=asyncio.FIRST_COMPLETED)
            finally:
                wake.cancel()
            # Let a few more files gather, so that batches are not cut one file at a time.
            await asyncio.wait([scan], timeout=ONCE_GATHER_S)
            return True
        scan.result()
        return False

    async def _open_conflicts(self, client: ServerClient) -> bool:
        if self.uploader.totals.conflicts == 0:
            return False
        remote = await client.status()
        self.status.conflicts = len(remote.open_conflicts)
        return bool(remote.open_conflicts)

    async def _heartbeat(self, client: ServerClient) -> bool:
        stats = await asyncio.to_thread(self.db.queue_stats)
        missing = [w.name for w in await asyncio.to_thread(self.db.watch_states)
                   if w.state is not WatchStatus.OK]
        self.metrics.queue_files.set(stats.files)
        self.metrics.queue_bytes.set(stats.bytes)
        reply = await client.heartbeat(self.sm.state, stats.files, stats.bytes, missing)
        if reply.resend_sha256 and await self.scanner.resend(reply.resend_sha256):
            self._wake.set()  # queued again: sync them now, not at the next heartbeat
        return reply.paused

    async def _wait_wake_or_stop(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    # scanning ------------------------------------------------------------------------------

    async def _scan_all(self, only: str | None = None) -> list[ScanReport]:
        """Scans every watch (or the one named only) and logs and counts what it found."""
        async with self._scan_lock:
            if only is None:
                reports = await self.scanner.scan_all()
            else:
                reports = [await self.scanner.scan_watch(w)
                           for w in self.config.watches if w.name == only]
        for r in reports:
            self._files_hashed += r.files_hashed
            self._files_seen += r.files_seen
            self.metrics.files_hashed.inc(r.files_hashed)
            event(log, "scan_done", agent=self.config.agent_id, watch=r.watch_name,
                  seen=r.files_seen, hashed=r.files_hashed, queued=r.files_queued,
                  skipped=r.files_skipped, missing=r.missing, frozen=r.frozen)
            for rel, why in r.skipped[:20]:
                event(log, "file_skipped", logging.WARNING, watch=r.watch_name, path=rel,
                      reason=why)
            if r.files_queued:
                self._wake.set()
        return reports

    async def _reconcile_loop(self, stop: asyncio.Event) -> None:
        """Watchers drop events; this periodic pass catches whatever they missed."""
        while not stop.is_set():
            try:
                await self._scan_all()
            except Exception:
                log.exception("reconcile scan failed")
            await _wait(stop, self.config.rescan_interval_s)

    async def _watch_root_changed(self, watch_name: str, _present: bool) -> None:
        """A watch folder vanished or came back: scanning it now records it missing, or picks
        up the files copied into it before its new watch existed and brings it back to OK."""
        await self._scan_all(only=watch_name)

    async def _on_settled(self, settled: SettledFile) -> None:
        queued = await self.scanner.scan_path(settled.watch_name, settled.path,
                                              incomplete=settled.incomplete)
        if queued:
            self._wake.set()

    async def _rescan(self, f: PendingFile) -> bool:
        watch = next((w for w in self.config.watches if w.name == f.watch_name), None)
        if watch is None:
            return False
        original = watch.path / f.relative_path
        if not original.exists() and not f.source_path.exists():
            await asyncio.to_thread(self.db.drop_pending, f.id, "file vanished before upload")
            return True
        if await self.scanner.scan_path(f.watch_name, original, force=True):
            self._wake.set()
            return True
        return False

    # status and metrics ------------------------------------------------------------------

    def _state_changed(self, state: AgentState) -> None:
        self.status.state = state.value
        self.status.state_since_unix = time.time()
        self.status.reason = self.sm.reason
        self._write_status()

    def _write_status(self) -> None:
        t = self.uploader.totals
        self.status.session_files_done = t.files_done
        self.status.session_bytes_done = t.bytes_acknowledged
        self.status.bytes_sent = t.bytes_sent
        try:
            write_status(self.config.buffer_path, self.status)
        except OSError as exc:
            log.warning("could not write status file", extra={"error": str(exc)})

    async def _status_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._write_status()
            await _wait(stop, STATUS_INTERVAL_S)

    async def _metrics_page(self) -> Response:
        from prometheus_client import generate_latest

        assert self.metrics.registry is not None  # the page is served only with a registry
        return Response(200, generate_latest(self.metrics.registry),
                        "text/plain; version=0.0.4; charset=utf-8")

    async def _healthz(self) -> Response:
        stats = await asyncio.to_thread(self.db.queue_stats)
        return Response.json({"state": self.sm.state.value, "queue_files": stats.files,
                              "queue_bytes": stats.bytes, "errored": stats.errored,
                              "last_sync_unix": self.status.last_sync_unix})


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
