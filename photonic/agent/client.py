"""The agent's typed API to a server over a mutual-TLS channel; protobuf stays behind wire.py."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc

from photonic import __version__, errors, wire
from photonic.dialing import wait_ready
from photonic.grpc_options import (
    CHANNEL_OPTIONS,
    CORRELATION_METADATA_KEY,
    REPLY_RUNS_METADATA_KEY,
)
from photonic.models import (
    AgentState,
    ChunkData,
    CommittedFile,
    ConflictPolicy,
    FailedFile,
    FileDecision,
    ManifestEntry,
    PossessionProof,
    is_content_hash,
)
from photonic.shoots import PendingShoot
from photonic.v1 import sync_pb2, sync_pb2_grpc

ServerReply = FileDecision | CommittedFile | FailedFile


@dataclass(frozen=True)
class Registration:
    agent_id: str
    scopes: tuple[str, ...]
    max_chunk_bytes: int
    max_transfer_size_bytes: int
    paused: bool
    accepts_chunk_runs: bool


@dataclass(frozen=True)
class HeartbeatReply:
    paused: bool
    resend_sha256: tuple[str, ...]
    """Contents the server lost (found damaged) and asks this agent to send again."""


@dataclass(frozen=True)
class ConflictInfo:
    id: int
    agent_id: str
    watch_name: str
    relative_path: str
    server_sha256: str
    incoming_sha256: str


@dataclass(frozen=True)
class RemoteStatus:
    agent_id: str
    state: AgentState
    photos: int
    bytes_stored: int
    last_seen_unix_ms: int
    last_sync_unix_ms: int
    paused: bool
    open_conflicts: tuple[ConflictInfo, ...]
    photos_safe: int = 0
    """Photos held in at least min_copies copies (the server's and its backup nodes')."""
    min_copies: int = 1
    backup_notes: tuple[str, ...] = ()
    """One sentence per backup node whose copy needs something kept (an archive key)."""


SYNC_BATCH_METHOD = "/photonic.v1.PhotonicSync/SyncBatch"


class SyncStream:
    """One open SyncBatch call: write manifest, chunks and aborts; read the server's replies."""

    def __init__(self, call: grpc.aio.StreamStreamCall, *, accepts_chunk_runs: bool) -> None:
        self._call = call
        self._writing_done = False
        self.accepts_chunk_runs = accepts_chunk_runs

    async def send_manifest(self, batch_id: str, agent_id: str, policy: ConflictPolicy,
                            entries: list[ManifestEntry]) -> None:
        await self._write(wire.manifest_to_wire(batch_id, agent_id, policy, entries))

    async def send_chunk(self, chunk: ChunkData) -> None:
        await self._write(wire.encode_chunk_message(chunk))

    async def send_chunk_run(self, chunks: Sequence[ChunkData]) -> None:
        """Several whole small files in one message; only when accepts_chunk_runs."""
        if len(chunks) == 1:
            await self.send_chunk(chunks[0])
        else:
            await self._write(wire.encode_chunk_run(chunks))

    async def send_proof(self, proof: PossessionProof) -> None:
        await self._write(wire.proof_to_wire(proof))

    async def send_abort(self, sha256: str, reason: str) -> None:
        await self._write(wire.abort_to_wire(sha256, reason))

    async def done_writing(self) -> None:
        """Half-closes the call; idempotent, since both the reader and sender may finish it."""
        if self._writing_done:
            return
        self._writing_done = True
        try:
            await self._call.done_writing()
        except grpc.aio.AioRpcError as exc:
            raise wire.error_from_rpc(exc) from exc

    async def _write(self, message: sync_pb2.SyncClientMessage | bytes) -> None:
        try:
            await self._call.write(message)
        except grpc.aio.AioRpcError as exc:
            raise wire.error_from_rpc(exc) from exc
        except asyncio.InvalidStateError as exc:
            raise errors.Transient("the sync stream closed") from exc

    async def replies(self) -> AsyncIterator[ServerReply]:
        try:
            while True:
                received = await self._call.read()
                if received is grpc.aio.EOF:
                    return
                for message in wire.replies_in(received):
                    kind = message.WhichOneof("kind")
                    if kind == "decision":
                        yield wire.decision_from_wire(message.decision)
                    elif kind == "committed":
                        yield wire.committed_from_wire(message.committed)
                    elif kind == "failed":
                        yield wire.failed_from_wire(message.failed)
        except grpc.aio.AioRpcError as exc:
            raise wire.error_from_rpc(exc) from exc

    def cancel(self) -> None:
        self._call.cancel()


class ServerClient:
    def __init__(self, endpoint: str, credentials: grpc.ChannelCredentials,
                 agent_id: str) -> None:
        self.endpoint = endpoint
        self.agent_id = agent_id
        self._channel = grpc.aio.secure_channel(endpoint, credentials, options=CHANNEL_OPTIONS)
        self._accepts_chunk_runs = False  # until the server says so in its registration
        self._stub = sync_pb2_grpc.PhotonicSyncStub(self._channel)  # type: ignore[no-untyped-call]
        # SyncBatch with a serializer that passes pre-encoded chunks through untouched.
        self._sync_batch = self._channel.stream_stream(
            SYNC_BATCH_METHOD, request_serializer=wire.serialize_client_message,
            response_deserializer=sync_pb2.SyncServerMessage.FromString)

    async def ready(self, timeout_s: float) -> None:
        await wait_ready(self._channel, self.endpoint, timeout_s)

    async def close(self) -> None:
        await self._channel.close()

    async def _unary(self, method: str, request: object, timeout_s: float = 30) -> object:
        try:
            return await getattr(self._stub, method)(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise wire.error_from_rpc(exc) from exc

    async def register(self, watch_names: Sequence[str]) -> Registration:
        r = await self._unary("RegisterAgent", sync_pb2.RegisterAgentRequest(
            agent_id=self.agent_id, hostname=socket.gethostname(), version=__version__,
            watch_names=list(watch_names)))
        assert isinstance(r, sync_pb2.RegisterAgentResponse)
        self._accepts_chunk_runs = r.accepts_chunk_runs
        return Registration(r.agent_id, tuple(r.scopes), r.max_chunk_bytes,
                            r.max_transfer_size_bytes, r.paused, r.accepts_chunk_runs)

    async def heartbeat(self, state: AgentState, queue_depth: int, bytes_pending: int,
                        missing_watches: Sequence[str],
                        pending_shoots: Sequence[PendingShoot] = ()) -> HeartbeatReply:
        """Reports the agent's state and what is still only here, by shoot; the server answers
        whether to pause and what to send again."""
        r = await self._unary("Heartbeat", sync_pb2.HeartbeatRequest(
            agent_id=self.agent_id, state=wire.state_to_wire(state), queue_depth=queue_depth,
            bytes_pending=bytes_pending, missing_watches=list(missing_watches),
            pending_shoots=[wire.pending_shoot_to_wire(s) for s in pending_shoots]), 10)
        assert isinstance(r, sync_pb2.HeartbeatResponse)
        resend = tuple(sha for sha in r.resend_sha256 if is_content_hash(sha))
        return HeartbeatReply(r.paused, resend)

    def open_sync(self, correlation_id: str | None = None) -> SyncStream:
        metadata = ((CORRELATION_METADATA_KEY, correlation_id or uuid.uuid4().hex[:16]),
                    (REPLY_RUNS_METADATA_KEY, "1"))
        return SyncStream(self._sync_batch(metadata=metadata),
                          accepts_chunk_runs=self._accepts_chunk_runs)

    async def status(self, agent_id: str = "") -> RemoteStatus:
        r = await self._unary("GetSyncStatus", sync_pb2.GetSyncStatusRequest(agent_id=agent_id))
        assert isinstance(r, sync_pb2.GetSyncStatusResponse)
        return RemoteStatus(
            r.agent_id, wire.state_from_wire(r.state), r.photos, r.bytes_stored,
            r.last_seen_unix_ms, r.last_sync_unix_ms, r.paused,
            tuple(ConflictInfo(c.id, c.agent_id, c.watch_name, c.relative_path,
                               c.server_sha256, c.incoming_sha256) for c in r.open_conflicts),
            r.photos_safe, max(1, r.min_copies), tuple(r.backup_notes))

    async def pause(self, paused: bool, agent_id: str = "") -> bool:
        r = await self._unary("PauseSyncing",
                              sync_pb2.PauseSyncingRequest(agent_id=agent_id, paused=paused))
        assert isinstance(r, sync_pb2.PauseSyncingResponse)
        return r.paused

    async def resolve_conflicts(self, ids: Sequence[int], keep_incoming: bool,
                                resolve_all: bool = False) -> list[int]:
        keep = (sync_pb2.ResolveConflictsRequest.KEEP_INCOMING if keep_incoming
                else sync_pb2.ResolveConflictsRequest.KEEP_SERVER)
        r = await self._unary("ResolveConflicts", sync_pb2.ResolveConflictsRequest(
            conflict_ids=list(ids), keep=keep, all=resolve_all))
        assert isinstance(r, sync_pb2.ResolveConflictsResponse)
        return list(r.resolved_ids)


async def connect_first(endpoints: Sequence[str], credentials: grpc.ChannelCredentials,
                        agent_id: str, timeout_s: float = 5.0) -> ServerClient:
    """The first endpoint that answers, tried in order; Transient when none does."""
    from photonic.agent.endpoints import Endpoints  # endpoints.py builds on this module

    return await Endpoints(endpoints, credentials, agent_id,
                           connect_timeout_s=timeout_s).connect_first()
