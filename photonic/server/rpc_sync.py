"""The PhotonicSync servicer: thin. It authorizes, translates with wire.py, and calls the
agents application layer (agents_service.py) or, for SyncBatch, the ingest session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Protocol

import grpc

from photonic import __version__, errors, wire
from photonic.grpc_options import (
    CORRELATION_METADATA_KEY,
    MAX_CHUNK_BYTES,
    MAX_REPLIES_PER_RUN,
    MAX_REPLY_RUN_BYTES,
    REPLY_RUNS_METADATA_KEY,
)
from photonic.models import CommittedFile, FileDecision, Scope
from photonic.server.agents_service import (
    AgentReport,
    AgentsService,
    AgentStatus,
    Keep,
    Registration,
)
from photonic.server.auth import Authorizer, Caller
from photonic.server.catalog import Catalog
from photonic.server.events import ServerEvent
from photonic.server.ingest import IngestSession, Outgoing
from photonic.server.ingest_deps import IngestDeps, check_manifest_size
from photonic.server.metrics import ServerMetrics
from photonic.server.rpc_errors import answer, refuse
from photonic.server.sync_audit import audit_sync
from photonic.server.sync_limits import Refusal, StreamBudget, SyncBudgets, SyncLimits
from photonic.v1 import sync_pb2, sync_pb2_grpc

log = logging.getLogger("photonic.server.sync")
_OUTGOING_QUEUE = 256
_UNSPECIFIED = sync_pb2.Event.KIND_UNSPECIFIED
_EVENT_KINDS: dict[str, sync_pb2.Event.Kind.ValueType] = {
    "agent_registered": sync_pb2.Event.KIND_AGENT_REGISTERED,
    "file_committed": sync_pb2.Event.KIND_FILE_COMMITTED,
    "file_deduplicated": sync_pb2.Event.KIND_FILE_DEDUPLICATED,
    "file_rejected": sync_pb2.Event.KIND_FILE_REJECTED,
    "conflict": sync_pb2.Event.KIND_CONFLICT,
    "agent_state": sync_pb2.Event.KIND_AGENT_STATE,
    "paused": sync_pb2.Event.KIND_PAUSED,
    "job": sync_pb2.Event.KIND_JOB,
}


def _outgoing_to_wire(item: Outgoing) -> sync_pb2.SyncServerMessage:
    if isinstance(item, FileDecision):
        return wire.decision_to_wire(item)
    if isinstance(item, CommittedFile):
        return wire.committed_to_wire(item)
    return wire.failed_to_wire(item)


async def _reply_runs(outgoing: asyncio.Queue[Outgoing | None], max_run: int
                      ) -> AsyncGenerator[sync_pb2.SyncServerMessage, None]:
    """The replies in order until the None that ends them; replies already waiting go out
    together in one message (up to max_run of them and MAX_REPLY_RUN_BYTES)."""
    run: list[sync_pb2.SyncServerMessage] = []
    size = 0
    while True:
        if run and (outgoing.empty() or len(run) >= max_run):
            yield wire.reply_run_to_wire(run)
            run, size = [], 0
        item = await outgoing.get()
        if item is None:
            if run:
                yield wire.reply_run_to_wire(run)
            return
        message = _outgoing_to_wire(item)
        message_size = message.ByteSize()
        if run and size + message_size > MAX_REPLY_RUN_BYTES:
            yield wire.reply_run_to_wire(run)
            run, size = [], 0
        run.append(message)
        size += message_size


def _event_to_wire(ev: ServerEvent) -> sync_pb2.Event:
    return sync_pb2.Event(kind=_EVENT_KINDS.get(ev.kind, _UNSPECIFIED), agent_id=ev.agent_id,
                          time_unix_ms=ev.time_unix_ms, sha256=ev.sha256,
                          watch_name=ev.watch_name, relative_path=ev.relative_path,
                          detail=ev.detail, size=ev.size, job_id=ev.job_id,
                          job_state=ev.job_state)


def _status_to_wire(status: AgentStatus) -> sync_pb2.GetSyncStatusResponse:
    return sync_pb2.GetSyncStatusResponse(
        agent_id=status.agent_id, state=wire.state_to_wire(status.state),
        photos=status.photos, bytes_stored=status.bytes_stored,
        last_seen_unix_ms=status.last_seen_ms, last_sync_unix_ms=status.last_sync_ms,
        paused=status.paused, queue_depth=status.queue_depth,
        bytes_pending=status.bytes_pending, missing_watches=list(status.missing_watches),
        open_conflicts=[sync_pb2.Conflict(
            id=c.id, agent_id=c.agent_id, watch_name=c.watch_name, relative_path=c.rel_path,
            server_sha256=c.server_sha256, incoming_sha256=c.incoming_sha256,
            created_unix_ms=c.created_ms) for c in status.open_conflicts])


def _keep_from_wire(value: int) -> Keep | None:
    """None for KEEP_UNSPECIFIED (refused by the service); any other value but KEEP_INCOMING
    keeps the server's version, as it always has."""
    if value == sync_pb2.ResolveConflictsRequest.KEEP_UNSPECIFIED:
        return None
    return Keep.INCOMING if value == sync_pb2.ResolveConflictsRequest.KEEP_INCOMING else Keep.SERVER


class SafeCopies(Protocol):
    min_copies: int

    def safe_photos(self, agent_id: str) -> int: ...

    def backup_notes(self) -> list[str]: ...


class SyncService(sync_pb2_grpc.PhotonicSyncServicer):
    def __init__(self, auth: Authorizer, agents: AgentsService, catalog: Catalog,
                 ingest: IngestDeps, metrics: ServerMetrics, budgets: SyncBudgets,
                 max_transfer_size_bytes: int, copies: SafeCopies | None = None) -> None:
        """copies: how many of an agent's photos are held in enough copies (replication)."""
        self._auth = auth
        self._copies = copies
        self._agents = agents
        self._catalog = catalog
        self._ingest = ingest
        self._metrics = metrics
        self._limits = SyncLimits(budgets)
        self._max_transfer = max_transfer_size_bytes
        self._closing: set[asyncio.Task[None]] = set()
        """Session closes begun when a call ended, held until they finish."""

    async def RegisterAgent(self, request: sync_pb2.RegisterAgentRequest,
                            context: grpc.aio.ServicerContext) -> sync_pb2.RegisterAgentResponse:
        caller = await self._auth.require_upload(context, "RegisterAgent", request.agent_id)
        registration = Registration(request.hostname, request.version,
                                    tuple(request.watch_names))
        done = await answer(context, lambda: self._agents.register(caller, registration))
        return sync_pb2.RegisterAgentResponse(
            agent_id=done.agent_id, scopes=sorted(s.value for s in done.scopes),
            max_chunk_bytes=MAX_CHUNK_BYTES, max_transfer_size_bytes=self._max_transfer,
            paused=done.paused, server_version=__version__, accepts_chunk_runs=True)

    async def Heartbeat(self, request: sync_pb2.HeartbeatRequest,
                        context: grpc.aio.ServicerContext) -> sync_pb2.HeartbeatResponse:
        caller = await self._auth.require(context, Scope.SYNC, "Heartbeat", request.agent_id)
        report = AgentReport(
            wire.state_from_wire(request.state), request.queue_depth, request.bytes_pending,
            tuple(request.missing_watches),
            tuple(wire.pending_shoot_from_wire(s) for s in request.pending_shoots))
        reply = await answer(context, lambda: self._agents.heartbeat(caller, report))
        return sync_pb2.HeartbeatResponse(paused=reply.paused,
                                          server_time_unix_ms=int(time.time() * 1000),
                                          resend_sha256=reply.resend_sha256)

    async def SyncBatch(self, request_iterator: AsyncIterator[sync_pb2.SyncClientMessage],
                        context: grpc.aio.ServicerContext
                        ) -> AsyncIterator[sync_pb2.SyncServerMessage]:
        caller = await self._auth.require_upload(context, "SyncBatch")
        row = await asyncio.to_thread(self._catalog.get_agent, caller.agent_id)
        if row is None:  # registration is where max_agents and the audit trail begin
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"{caller.agent_id} is not registered; call RegisterAgent first")
        elif row.paused:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"syncing is paused for {caller.agent_id}"
                                + (" by an admin" if row.admin_paused else ""))
        stream = self._limits.open_stream(caller.agent_id)
        if isinstance(stream, Refusal):
            self._metrics.refused_calls.labels(stream.budget).inc()
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, stream.message)
            return
        self._metrics.active_syncs.inc()
        started = time.monotonic()
        try:
            # aclosing: the batch's own cleanup (its session's claims, partials and tasks)
            # runs when this generator ends, not whenever the collector gets to it.
            async with contextlib.aclosing(
                    self._run_batch(caller, request_iterator, context, stream)) as replies:
                async for reply in replies:
                    yield reply
        finally:
            stream.close()
            self._metrics.active_syncs.dec()
            self._metrics.sync_duration.labels(caller.agent_id).observe(
                time.monotonic() - started)

    async def _run_batch(self, caller: Caller,
                         requests: AsyncIterator[sync_pb2.SyncClientMessage],
                         context: grpc.aio.ServicerContext, stream: StreamBudget
                         ) -> AsyncGenerator[sync_pb2.SyncServerMessage, None]:
        outgoing: asyncio.Queue[Outgoing | None] = asyncio.Queue(_OUTGOING_QUEUE)
        failure: list[errors.PhotonicError] = []
        handler = asyncio.current_task()

        def broken(exc: errors.PhotonicError) -> None:
            failure.append(exc)
            reader.cancel()  # its `finally` ends the replies, and the call ends with exc

        async def send(reply: Outgoing) -> None:
            stream.pending.answered(reply)
            await outgoing.put(reply)

        session = IngestSession(caller.agent_id, self._ingest, send, on_broken=broken)
        metadata = dict(context.invocation_metadata() or ())
        correlation = metadata.get(CORRELATION_METADATA_KEY, "")
        max_run = MAX_REPLIES_PER_RUN if metadata.get(REPLY_RUNS_METADATA_KEY) == "1" else 1

        async def pump() -> None:
            try:
                async for message in requests:
                    stream.idle.progressed()
                    with stream.idle.servers_turn():
                        await self._dispatch(session, caller, message, stream)
                await session.flush()
            except errors.PhotonicError as exc:
                failure.append(exc)
            finally:
                await outgoing.put(None)

        async def cut_when_idle() -> None:
            await stream.idle.expired(lambda: session.working)
            if stream.idle.sending and handler is not None:
                handler.cancel()  # the client takes no replies: nothing else would end it
            broken(errors.LimitExceeded(stream.idle.message()))

        reader = asyncio.create_task(pump())
        watchdog = asyncio.create_task(cut_when_idle())
        loop = asyncio.get_running_loop()

        finishing: list[asyncio.Task[None]] = []

        def finish() -> asyncio.Task[None]:
            """The session closed, then the call audited: once, in a task of its own, so it
            neither waits on how (or whether) these generators get closed nor is cut short
            when the handler is cancelled again while it runs."""
            if not finishing:
                task = loop.create_task(self._finish(caller, session))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
                finishing.append(task)
            return finishing[0]

        def call_ended(_context: object) -> None:
            """The call is over (its agent gone, cancelled, or done): the session is closed
            now even if these generators are left suspended at a yield, which they are when
            the call dies while a reply is being written (closed only when collected)."""
            reader.cancel()
            watchdog.cancel()
            finish()

        context.add_done_callback(
            lambda ctx: loop.call_soon_threadsafe(call_ended, ctx))
        try:
            async with contextlib.aclosing(_reply_runs(outgoing, max_run)) as runs:
                async for message in runs:
                    stream.idle.sending = True
                    yield message
                    stream.idle.sending = False
                    stream.idle.progressed()
            await asyncio.wait([reader])
            if not reader.cancelled():
                reader.result()
        finally:
            watchdog.cancel()
            reader.cancel()
            await asyncio.shield(finish())
        if failure:
            exc = failure[0]
            if isinstance(exc, errors.LimitExceeded):
                self._metrics.refused_calls.labels("sync_budget").inc()
            await refuse(context, exc, correlation_id=correlation,
                         logged_as="sync_stream_refused", agent=caller.agent_id)

    async def _finish(self, caller: Caller, session: IngestSession) -> None:
        await session.close()
        await audit_sync(self._auth.audit, caller.agent_id, session.tally)

    async def _dispatch(self, session: IngestSession, caller: Caller,
                        message: sync_pb2.SyncClientMessage, stream: StreamBudget) -> None:
        kind = message.WhichOneof("kind")
        if kind in ("chunk", "chunks"):
            await session.on_chunks([wire.chunk_from_wire(c) for c in wire.chunks_in(message)])
        elif kind == "manifest":
            manifest = message.manifest
            if manifest.agent_id and manifest.agent_id != caller.agent_id:
                await self._auth.audit(caller.agent_id, "SyncBatch", manifest.agent_id,
                                       "refused", "manifest names another agent")
                raise errors.AuthError(f"certificate {caller.agent_id!r} may not write as "
                                       f"agent {manifest.agent_id!r}")
            check_manifest_size(len(manifest.files))  # before converting a million entries
            await stream.pending.offer([e.sha256 for e in manifest.files], manifest.ByteSize())
            await session.on_manifest([wire.entry_from_wire(e) for e in manifest.files],
                                      wire.policy_from_wire(manifest.conflict_policy))
        elif kind == "abort":
            if await session.on_abort(message.abort.sha256, message.abort.reason):
                stream.pending.dropped(message.abort.sha256)
        elif kind == "proof":
            await session.on_proof(wire.proof_from_wire(message.proof))
        else:
            raise errors.InvalidInput("empty SyncClientMessage")

    async def ResolveConflicts(self, request: sync_pb2.ResolveConflictsRequest,
                               context: grpc.aio.ServicerContext
                               ) -> sync_pb2.ResolveConflictsResponse:
        caller = await self._auth.require(context, Scope.ADMIN, "ResolveConflicts")
        resolved = await answer(context, lambda: self._agents.resolve_conflicts(
            caller, _keep_from_wire(request.keep), list(request.conflict_ids), request.all))
        return sync_pb2.ResolveConflictsResponse(resolved_ids=resolved)

    async def GetSyncStatus(self, request: sync_pb2.GetSyncStatusRequest,
                            context: grpc.aio.ServicerContext) -> sync_pb2.GetSyncStatusResponse:
        caller = await self._auth.require(context, Scope.SYNC, "GetSyncStatus")
        status = await answer(context, lambda: self._agents.status(caller, request.agent_id))
        reply = _status_to_wire(status)
        if self._copies is not None:
            reply.photos_safe = await asyncio.to_thread(self._copies.safe_photos,
                                                        status.agent_id)
            reply.min_copies = self._copies.min_copies
            reply.backup_notes.extend(self._copies.backup_notes())
        return reply

    async def PauseSyncing(self, request: sync_pb2.PauseSyncingRequest,
                           context: grpc.aio.ServicerContext) -> sync_pb2.PauseSyncingResponse:
        caller = await self._auth.require(context, Scope.SYNC, "PauseSyncing")
        paused = await answer(context, lambda: self._agents.pause(caller, request.agent_id,
                                                                   request.paused))
        return sync_pb2.PauseSyncingResponse(paused=paused)

    async def StreamEvents(self, request: sync_pb2.StreamEventsRequest,
                           context: grpc.aio.ServicerContext) -> AsyncIterator[sync_pb2.Event]:
        caller = await self._auth.require(context, Scope.SYNC, "StreamEvents")
        feed = await answer(context, lambda: self._agents.events(caller, request.agent_id))
        async for ev in feed:
            yield _event_to_wire(ev)
