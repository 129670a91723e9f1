"""The only translator between photonic's domain types and protobuf messages, and between
photonic's error tree and gRPC status codes."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from photonic import errors
from photonic.models import (
    AgentState,
    ChunkData,
    CommittedFile,
    ConflictPolicy,
    ContentHash,
    Decision,
    ExifSummary,
    FailedFile,
    FileDecision,
    ManifestEntry,
    PossessionProof,
)
from photonic.shoots import PendingShoot
from photonic.v1 import common_pb2, sync_pb2

_STATE_TO_WIRE: dict[AgentState, common_pb2.AgentState.ValueType] = {
    AgentState.OFFLINE: common_pb2.AGENT_STATE_OFFLINE,
    AgentState.CONNECTING: common_pb2.AGENT_STATE_CONNECTING,
    AgentState.SYNCING: common_pb2.AGENT_STATE_SYNCING,
    AgentState.MONITORING: common_pb2.AGENT_STATE_MONITORING,
    AgentState.CONFLICT: common_pb2.AGENT_STATE_CONFLICT,
    AgentState.ERROR: common_pb2.AGENT_STATE_ERROR,
}
_STATE_FROM_WIRE = {v: k for k, v in _STATE_TO_WIRE.items()}

_POLICY_TO_WIRE: dict[ConflictPolicy, common_pb2.ConflictPolicy.ValueType] = {
    ConflictPolicy.AUTO: common_pb2.CONFLICT_POLICY_AUTO,
    ConflictPolicy.MANUAL: common_pb2.CONFLICT_POLICY_MANUAL,
    ConflictPolicy.SERVER_WINS: common_pb2.CONFLICT_POLICY_SERVER_WINS,
}
_POLICY_FROM_WIRE = {v: k for k, v in _POLICY_TO_WIRE.items()}

_DECISION_TO_WIRE: dict[Decision, sync_pb2.FileDecision.Action.ValueType] = {
    Decision.HAVE: sync_pb2.FileDecision.ACTION_HAVE,
    Decision.SEND: sync_pb2.FileDecision.ACTION_SEND,
    Decision.REJECT: sync_pb2.FileDecision.ACTION_REJECT,
    Decision.PROVE: sync_pb2.FileDecision.ACTION_PROVE,
}
_DECISION_FROM_WIRE = {v: k for k, v in _DECISION_TO_WIRE.items()}

_STATUS_BY_ERROR: list[tuple[type[errors.PhotonicError], grpc.StatusCode]] = [
    (errors.IntegrityError, grpc.StatusCode.DATA_LOSS),
    (errors.AuthError, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.LimitExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.StorageFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Transient, grpc.StatusCode.UNAVAILABLE),
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.ConfigError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.NotReady, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
]


def status_for(error: errors.PhotonicError) -> grpc.StatusCode:
    """The gRPC status code a photonic error travels as."""
    for kind, code in _STATUS_BY_ERROR:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


# How a client reads a status: anything not listed (and a server-side config problem, which
# the agent cannot fix) is worth retrying later.
_ERROR_BY_STATUS: dict[grpc.StatusCode, type[errors.PhotonicError]] = {
    grpc.StatusCode.DATA_LOSS: errors.IntegrityError,
    grpc.StatusCode.PERMISSION_DENIED: errors.AuthError,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.LimitExceeded,
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidInput,
    grpc.StatusCode.UNIMPLEMENTED: errors.Unimplemented,
}


def error_from_status(code: grpc.StatusCode | None, message: str) -> errors.PhotonicError:
    """The photonic error an RPC failure stands for, so agent code never inspects raw codes."""
    kind = _ERROR_BY_STATUS.get(code) if code is not None else None
    return (kind or errors.Transient)(message)


def error_from_rpc(exc: grpc.aio.AioRpcError) -> errors.PhotonicError:
    """The photonic error a failed call raised on the client side stands for."""
    return error_from_status(exc.code(), exc.details() or str(exc.code()))


def state_to_wire(state: AgentState) -> common_pb2.AgentState.ValueType:
    return _STATE_TO_WIRE[state]


def state_from_wire(value: int) -> AgentState:
    return _STATE_FROM_WIRE.get(common_pb2.AgentState.ValueType(value), AgentState.OFFLINE)


def policy_to_wire(policy: ConflictPolicy) -> common_pb2.ConflictPolicy.ValueType:
    return _POLICY_TO_WIRE[policy]


def policy_from_wire(value: int) -> ConflictPolicy:
    return _POLICY_FROM_WIRE.get(common_pb2.ConflictPolicy.ValueType(value), ConflictPolicy.AUTO)


def exif_to_wire(exif: ExifSummary) -> common_pb2.ExifSummary:
    return common_pb2.ExifSummary(
        capture_time_unix_ms=exif.capture_time_unix_ms,
        camera_make=exif.camera_make,
        camera_model=exif.camera_model,
        lens_model=exif.lens_model,
        has_gps=exif.has_gps,
        width=exif.width,
        height=exif.height,
        orientation=exif.orientation,
    )


def exif_from_wire(m: common_pb2.ExifSummary) -> ExifSummary:
    return ExifSummary(
        capture_time_unix_ms=m.capture_time_unix_ms,
        camera_make=m.camera_make,
        camera_model=m.camera_model,
        lens_model=m.lens_model,
        has_gps=m.has_gps,
        width=m.width,
        height=m.height,
        orientation=m.orientation,
    )


def entry_to_wire(e: ManifestEntry) -> sync_pb2.ManifestEntry:
    return sync_pb2.ManifestEntry(
        sha256=e.sha256,
        size=e.size,
        watch_name=e.watch_name,
        relative_path=e.relative_path,
        exif=exif_to_wire(e.exif),
        mtime_ns=e.mtime_ns,
        base_sha256=e.base_sha256,
        incomplete=e.incomplete,
    )


def entry_from_wire(m: sync_pb2.ManifestEntry) -> ManifestEntry:
    return ManifestEntry(
        sha256=ContentHash(m.sha256),
        size=m.size,
        watch_name=m.watch_name,
        relative_path=m.relative_path,
        exif=exif_from_wire(m.exif),
        mtime_ns=m.mtime_ns,
        base_sha256=m.base_sha256,
        incomplete=m.incomplete,
    )


def manifest_to_wire(
    batch_id: str, agent_id: str, policy: ConflictPolicy, entries: list[ManifestEntry]
) -> sync_pb2.SyncClientMessage:
    return sync_pb2.SyncClientMessage(
        manifest=sync_pb2.BatchManifest(
            batch_id=batch_id,
            agent_id=agent_id,
            conflict_policy=policy_to_wire(policy),
            files=[entry_to_wire(e) for e in entries],
        )
    )


def decision_to_wire(d: FileDecision) -> sync_pb2.SyncServerMessage:
    return sync_pb2.SyncServerMessage(
        decision=sync_pb2.FileDecision(
            sha256=d.sha256,
            watch_name=d.watch_name,
            relative_path=d.relative_path,
            action=_DECISION_TO_WIRE[d.action],
            offset=d.offset,
            reason=d.reason,
            version=d.version,
            conflict=d.conflict,
            nonce=d.nonce,
            ranges=[sync_pb2.ByteRange(offset=o, length=n) for o, n in d.ranges],
        )
    )


def decision_from_wire(m: sync_pb2.FileDecision) -> FileDecision:
    return FileDecision(
        sha256=ContentHash(m.sha256),
        watch_name=m.watch_name,
        relative_path=m.relative_path,
        action=_DECISION_FROM_WIRE.get(m.action, Decision.REJECT),
        offset=m.offset,
        reason=m.reason,
        version=m.version,
        conflict=m.conflict,
        nonce=m.nonce,
        ranges=tuple((r.offset, r.length) for r in m.ranges),
    )


def proof_to_wire(p: PossessionProof) -> sync_pb2.SyncClientMessage:
    return sync_pb2.SyncClientMessage(proof=sync_pb2.PossessionProof(
        sha256=p.sha256, nonce=p.nonce, digest=p.digest))


def proof_from_wire(m: sync_pb2.PossessionProof) -> PossessionProof:
    return PossessionProof(ContentHash(m.sha256), m.nonce, m.digest)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + _varint(len(payload)) + payload


def _chunk_parts(c: ChunkData) -> tuple[int, list[bytes]]:
    """The fields of a Chunk message as protobuf would write them (defaults omitted), and
    their total size; the data is referenced, not copied."""
    head = bytearray()
    if c.sha256:
        head += _field(0x0A, c.sha256.encode())  # 1: sha256, length-delimited
    if c.offset:
        head += b"\x10" + _varint(c.offset)  # 2: offset, varint
    data_key = (b"\x1a" + _varint(len(c.data))) if c.data else b""  # 3: data
    tail = bytearray()
    if c.lz4:
        tail += b"\x20\x01"  # 4: lz4, bool
    if c.raw_size:
        tail += b"\x28" + _varint(c.raw_size)  # 5: raw_size, varint
    parts = [bytes(head), data_key, c.data, bytes(tail)]
    return sum(len(p) for p in parts), parts


def encode_chunk_message(c: ChunkData) -> bytes:
    """The serialized SyncClientMessage{chunk} carrying c, byte for byte as protobuf would
    write it, built with one copy of the data instead of protobuf's several (building the
    nested message, setting it on the outer one, serializing): at 1 MiB a chunk those copies,
    made holding the GIL, were a third of the agent's Python time on large photos. A unit
    test holds the bytes equal to SerializeToString's."""
    size, parts = _chunk_parts(c)
    return b"".join((b"\x12", _varint(size), *parts))  # 2: chunk


def encode_chunk_run(chunks: Sequence[ChunkData]) -> bytes:
    """The serialized SyncClientMessage{chunks: ChunkRun} carrying every chunk, with one copy
    of their data; equal to protobuf's bytes like encode_chunk_message."""
    body: list[bytes] = []
    for c in chunks:
        size, parts = _chunk_parts(c)
        body += (b"\x0a", _varint(size), *parts)  # ChunkRun 1: chunks, repeated
    run_size = sum(len(p) for p in body)
    return b"".join((b"\x22", _varint(run_size), *body))  # 4: chunks


def serialize_client_message(message: sync_pb2.SyncClientMessage | bytes) -> bytes:
    """The SyncBatch request serializer: messages, or chunks already encoded as bytes."""
    if isinstance(message, bytes):
        return message
    return message.SerializeToString()


def chunks_in(message: sync_pb2.SyncClientMessage) -> list[sync_pb2.Chunk]:
    """The chunks a `chunk` or `chunks` message carries."""
    if message.WhichOneof("kind") == "chunk":
        return [message.chunk]
    return list(message.chunks.chunks)


def chunk_from_wire(m: sync_pb2.Chunk) -> ChunkData:
    return ChunkData(
        sha256=ContentHash(m.sha256), offset=m.offset, data=m.data, lz4=m.lz4, raw_size=m.raw_size
    )


def abort_to_wire(sha256: str, reason: str) -> sync_pb2.SyncClientMessage:
    return sync_pb2.SyncClientMessage(abort=sync_pb2.FileAbort(sha256=sha256, reason=reason))


def committed_to_wire(c: CommittedFile) -> sync_pb2.SyncServerMessage:
    return sync_pb2.SyncServerMessage(
        committed=sync_pb2.FileCommitted(
            sha256=c.sha256,
            watch_name=c.watch_name,
            relative_path=c.relative_path,
            version=c.version,
            conflict=c.conflict,
            library_path=c.library_path,
        )
    )


def committed_from_wire(m: sync_pb2.FileCommitted) -> CommittedFile:
    return CommittedFile(
        sha256=ContentHash(m.sha256),
        watch_name=m.watch_name,
        relative_path=m.relative_path,
        version=m.version,
        conflict=m.conflict,
        library_path=m.library_path,
    )


def failed_to_wire(f: FailedFile) -> sync_pb2.SyncServerMessage:
    return sync_pb2.SyncServerMessage(
        failed=sync_pb2.FileFailed(sha256=f.sha256, reason=f.reason, retryable=f.retryable)
    )


def reply_run_to_wire(replies: Sequence[sync_pb2.SyncServerMessage]
                      ) -> sync_pb2.SyncServerMessage:
    """One message for replies that were ready together; a single reply goes as itself."""
    if len(replies) == 1:
        return replies[0]
    return sync_pb2.SyncServerMessage(replies=sync_pb2.ReplyRun(replies=replies))


def replies_in(message: sync_pb2.SyncServerMessage) -> list[sync_pb2.SyncServerMessage]:
    """The replies one message carries, in order; runs nested in a run are ignored (a server
    never sends them)."""
    if message.WhichOneof("kind") == "replies":
        return [r for r in message.replies.replies if r.WhichOneof("kind") != "replies"]
    return [message]


def failed_from_wire(m: sync_pb2.FileFailed) -> FailedFile:
    return FailedFile(sha256=ContentHash(m.sha256), reason=m.reason, retryable=m.retryable)


def pending_shoot_to_wire(s: PendingShoot) -> sync_pb2.PendingShoot:
    return sync_pb2.PendingShoot(watch_name=s.watch_name, folder=s.folder,
                                 start_unix_ms=s.start_ms, end_unix_ms=s.end_ms,
                                 files=s.files, bytes=s.bytes, camera=s.camera)


def pending_shoot_from_wire(m: sync_pb2.PendingShoot) -> PendingShoot:
    return PendingShoot(m.watch_name, m.folder, m.start_unix_ms, m.end_unix_ms, m.files,
                        m.bytes, m.camera)
