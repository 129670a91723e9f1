"""The client surfaces the sync side uses, as Protocols: the uploader, the exchange and the
sync service are typed against these, so tests swap in fakes instead of a gRPC server.
client.ServerClient and client.SyncStream are the real implementations."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from photonic.agent.client import HeartbeatReply, Registration, RemoteStatus, ServerReply
from photonic.models import AgentState, ChunkData, ConflictPolicy, ManifestEntry, PossessionProof
from photonic.shoots import PendingShoot


class BatchStream(Protocol):
    """One open SyncBatch call, as the exchange and the chunk sender use it."""

    @property
    def accepts_chunk_runs(self) -> bool: ...

    async def send_manifest(self, batch_id: str, agent_id: str, policy: ConflictPolicy,
                            entries: list[ManifestEntry]) -> None: ...

    async def send_chunk(self, chunk: ChunkData) -> None: ...

    async def send_chunk_run(self, chunks: Sequence[ChunkData]) -> None: ...

    async def send_proof(self, proof: PossessionProof) -> None: ...

    async def send_abort(self, sha256: str, reason: str) -> None: ...

    async def done_writing(self) -> None: ...

    def replies(self) -> AsyncIterator[ServerReply]: ...

    def cancel(self) -> None: ...


class BatchOpener(Protocol):
    """What the uploader needs of a connection: a way to open SyncBatch calls."""

    def open_sync(self, correlation_id: str | None = None) -> BatchStream: ...


class SyncServerApi(BatchOpener, Protocol):
    """Every call the sync service makes on one connected server, and nothing more."""

    @property
    def endpoint(self) -> str: ...

    async def register(self, watch_names: Sequence[str]) -> Registration: ...

    async def heartbeat(self, state: AgentState, queue_depth: int, bytes_pending: int,
                        missing_watches: Sequence[str],
                        pending_shoots: Sequence[PendingShoot] = ()) -> HeartbeatReply: ...

    async def status(self, agent_id: str = "") -> RemoteStatus: ...

    async def close(self) -> None: ...
