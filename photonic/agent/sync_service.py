"""The sync service: connects to the first reachable server, registers, drains the queue,
heartbeats, watches for conflicts, and reconnects with backoff when the connection fails."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import grpc

from photonic import errors
from photonic.agent.backoff import Backoff
from photonic.agent.metrics import AgentMetrics
from photonic.agent.pending_report import PendingShootReport
from photonic.agent.scan_runner import ScanRunner
from photonic.agent.scanner import ScanReport
from photonic.agent.state import AgentStateMachine
from photonic.agent.statedb import AgentStateDB, WatchStatus
from photonic.agent.statusfile import LiveStatus
from photonic.agent.sync_api import SyncServerApi
from photonic.agent.uploader import Uploader
from photonic.logfmt import event
from photonic.models import AgentState

log = logging.getLogger("photonic.agent")

ONCE_GATHER_S = 0.1
HEARTBEAT_INTERVAL_S = 10.0


class Connector(Protocol):
    """How the sync service reaches a server: the first that answers (agent.endpoints)."""

    @property
    def endpoints(self) -> tuple[str, ...]: ...

    async def connect_first(self) -> SyncServerApi: ...


@dataclass(frozen=True)
class SyncSettings:
    agent_id: str
    watch_names: tuple[str, ...]
    retry_attempts: int
    """With `once`: rounds over what stays queued before the run gives up on it."""
    once: bool = False
    """Scan everything, sync it, and end (`photonic agent --once`)."""
    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S


class SyncService:
    """Runs until stopped; with `once`, ends when the first scan is synced (or given up)."""

    name = "sync"

    def __init__(self, settings: SyncSettings, *, connector: Connector, uploader: Uploader,
                 db: AgentStateDB, sm: AgentStateMachine, metrics: AgentMetrics,
                 status: LiveStatus, scans: ScanRunner, queued: asyncio.Event,
                 pending: PendingShootReport) -> None:
        self._s = settings
        self._connector = connector
        self._uploader = uploader
        self._db = db
        self._sm = sm
        self._metrics = metrics
        self._status = status
        self._scans = scans
        self._wake = queued
        self._pending = pending
        self._initial_scan: asyncio.Task[list[ScanReport]] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        if self._s.once:
            # Uploading starts with the first files queued, while the scan goes on: the
            # hashing of one folder overlaps the sending of the one before.
            self._initial_scan = asyncio.create_task(self._scans.scan_all())
        try:
            await self._connection_loop(stop)
        finally:
            if self._initial_scan is not None:
                self._initial_scan.cancel()
                await asyncio.gather(self._initial_scan, return_exceptions=True)

    async def _connection_loop(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            client: SyncServerApi | None = None
            try:
                self._sm.to(AgentState.CONNECTING,
                            "dialing " + ", ".join(self._connector.endpoints))
                client = await self._connector.connect_first()
                registration = await client.register(self._s.watch_names)
                self._status.endpoint = client.endpoint
                backoff.reset()
                event(log, "connected", agent=self._s.agent_id, endpoint=client.endpoint,
                      scopes=",".join(registration.scopes))
                if await self._serve(client, stop, registration.paused):
                    return
            except (errors.Transient, errors.LimitExceeded, errors.InvalidInput,
                    errors.IntegrityError, errors.NotFound, errors.StorageFull) as exc:
                self._metrics.reconnects.inc()
                self._sm.to(AgentState.OFFLINE, str(exc))
            except (errors.AuthError, grpc.aio.AioRpcError) as exc:
                self._sm.to(AgentState.ERROR, str(exc))
                event(log, "refused_by_server", logging.ERROR, agent=self._s.agent_id,
                      reason=str(exc))
            finally:
                if client is not None:
                    await client.close()
            if self._sm.state is not AgentState.OFFLINE:
                self._sm.to(AgentState.OFFLINE, "reconnecting")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff.next_delay_s())

    async def _serve(self, client: SyncServerApi, stop: asyncio.Event, paused: bool) -> bool:
        """Syncs and monitors over one connection; True when a `once` run is complete."""
        rounds = 0
        while not stop.is_set():
            self._wake.clear()
            rounds += 1
            stats = await asyncio.to_thread(self._db.queue_stats)
            if stats.files - stats.errored > 0 and not paused:
                self._sm.to(AgentState.SYNCING, f"{stats.files - stats.errored} files queued")
                paused = await self._drain_heartbeating(client) or paused
                self._status.last_sync_unix = time.time()
            conflicted = await self._open_conflicts(client)
            self._sm.to(AgentState.CONFLICT if conflicted else AgentState.MONITORING,
                        "conflicts need a person" if conflicted else "queue drained")
            paused = await self._heartbeat(client)
            if self._s.once:
                if await self._initial_scan_running():
                    rounds = 0  # rounds count retries of what is queued, not waits for the scan
                    continue
                left = await asyncio.to_thread(self._db.queue_stats)
                if left.files - left.errored == 0 or rounds > self._s.retry_attempts:
                    return True
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait_wake_or_stop(stop),
                                       self._s.heartbeat_interval_s)
        return False

    async def _drain_heartbeating(self, client: SyncServerApi) -> bool:
        """Drains the queue, heartbeating every interval meanwhile: a sync of a whole card can
        take hours, and the server must keep seeing the agent as connected, with what is
        still pending. A heartbeat that fails here is not the drain's problem (a lost
        connection ends the drain on its own). True when a heartbeat said paused."""
        paused = False
        drain = asyncio.create_task(self._uploader.drain(client))
        try:
            while True:
                done, _ = await asyncio.wait({drain}, timeout=self._s.heartbeat_interval_s)
                if done:
                    break
                try:
                    paused = await self._heartbeat(client) or paused
                except (errors.Transient, errors.LimitExceeded, errors.InvalidInput) as exc:
                    event(log, "heartbeat_failed", logging.WARNING, agent=self._s.agent_id,
                          reason=str(exc))
        finally:
            if not drain.done():  # this coroutine was cancelled (a stop): so is the drain
                drain.cancel()
                await asyncio.gather(drain, return_exceptions=True)
        drain.result()
        return paused

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

    async def _open_conflicts(self, client: SyncServerApi) -> bool:
        if self._uploader.totals.conflicts == 0:
            return False
        remote = await client.status()
        self._status.conflicts = len(remote.open_conflicts)
        return bool(remote.open_conflicts)

    async def _heartbeat(self, client: SyncServerApi) -> bool:
        stats = await asyncio.to_thread(self._db.queue_stats)
        missing = [w.name for w in await asyncio.to_thread(self._db.watch_states)
                   if w.state is not WatchStatus.OK]
        self._metrics.queue_files.set(stats.files)
        self._metrics.queue_bytes.set(stats.bytes)
        shoots = await asyncio.to_thread(self._pending.shoots, stats.files)
        reply = await client.heartbeat(self._sm.state, stats.files, stats.bytes, missing,
                                       shoots)
        if reply.resend_sha256:
            await self._scans.resend(reply.resend_sha256)
        return reply.paused

    async def _wait_wake_or_stop(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
