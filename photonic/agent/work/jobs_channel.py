"""The worker's typed client for PhotonicJobs' three worker RPCs (Work, FetchBlob,
UploadResult) over one endpoint's mutual-TLS channel; protobuf stays behind jobs_wire."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from photonic import errors, wire
from photonic.grpc_options import CHANNEL_OPTIONS
from photonic.jobs_model import ServerOrder, WorkerReport
from photonic.jobs_wire import order_from_wire, report_to_wire
from photonic.media.chunks import received_bytes
from photonic.v1 import jobs_pb2

RESULT_CHUNK_BYTES = 1 << 20
"""Bytes per ResultChunk: small enough to resume cheaply, large enough to keep the link busy."""

_SERVICE = "/photonic.v1.PhotonicJobs/"



class WorkStream:
    """One open Work call: reports go out through send(), orders come in through orders().

    Writes are serialised by a lock because jobs, the heartbeat and the capacity updates all
    report on the same stream from different tasks, and a gRPC call takes one write at a time.
    """

    def __init__(self, call: grpc.aio.StreamStreamCall) -> None:
        self._call = call
        self._lock = asyncio.Lock()
        self._writing_done = False

    async def send(self, report: WorkerReport) -> None:
        async with self._lock:
            if self._writing_done:
                raise errors.Transient("the Work stream is closed for writing")
            try:
                await self._call.write(report_to_wire(report))
            except grpc.aio.AioRpcError as exc:
                raise wire.error_from_rpc(exc) from exc
            except asyncio.InvalidStateError as exc:
                raise errors.Transient("the Work stream closed") from exc

    async def orders(self) -> AsyncIterator[ServerOrder]:
        """The server's orders until it ends the stream; orders this worker does not know
        (a newer server's) are skipped."""
        try:
            while True:
                received = await self._call.read()
                if received is grpc.aio.EOF:
                    return
                assert isinstance(received, jobs_pb2.WorkAssignment)
                order = order_from_wire(received)
                if order is not None:
                    yield order
        except grpc.aio.AioRpcError as exc:
            raise wire.error_from_rpc(exc) from exc

    async def done_writing(self) -> None:
        """Half-closes the call, so the server sees the worker leave cleanly; idempotent."""
        async with self._lock:
            if self._writing_done:
                return
            self._writing_done = True
            # Already gone: nothing is left to say.
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await self._call.done_writing()

    def cancel(self) -> None:
        self._call.cancel()


class JobsChannel:
    """The worker RPCs of one server endpoint. Pass `channel` to share a connection another
    client holds (then close() leaves it open); else one is dialled with `credentials`."""

    def __init__(self, endpoint: str, credentials: grpc.ChannelCredentials | None = None, *,
                 channel: grpc.aio.Channel | None = None) -> None:
        if channel is None and credentials is None:
            raise ValueError("JobsChannel needs credentials or an existing channel")
        self.endpoint = endpoint
        self._owned = channel is None
        self._channel = channel or grpc.aio.secure_channel(endpoint, credentials,
                                                           options=CHANNEL_OPTIONS)
        self._work = self._channel.stream_stream(
            _SERVICE + "Work", request_serializer=jobs_pb2.WorkerMessage.SerializeToString,
            response_deserializer=jobs_pb2.WorkAssignment.FromString)
        self._fetch = self._channel.unary_stream(
            _SERVICE + "FetchBlob",
            request_serializer=jobs_pb2.FetchBlobRequest.SerializeToString,
            response_deserializer=jobs_pb2.BlobChunk.FromString)
        self._upload = self._channel.stream_unary(
            _SERVICE + "UploadResult",
            request_serializer=jobs_pb2.ResultChunk.SerializeToString,
            response_deserializer=jobs_pb2.UploadResultResponse.FromString)

    async def close(self) -> None:
        if self._owned:
            await self._channel.close()

    def open_work(self) -> WorkStream:
        return WorkStream(self._work())

    async def fetch_blob(self, sha256: str, offset: int, job_id: str, attempt: int
                         ) -> AsyncIterator[bytes]:
        """The content sha256 from `offset` on, as raw bytes in order. LZ4 chunks are
        inflated within their declared size; a chunk out of order is an IntegrityError, so
        what the caller appends is always the next byte of the file."""
        call = self._fetch(jobs_pb2.FetchBlobRequest(sha256=sha256, offset=offset,
                                                     job_id=job_id, attempt=attempt))
        expected = offset
        try:
            async for chunk in call:
                assert isinstance(chunk, jobs_pb2.BlobChunk)
                data = received_bytes(chunk, expected, "the server")
                expected += len(data)
                yield data
        except grpc.aio.AioRpcError as exc:
            raise wire.error_from_rpc(exc) from exc
        finally:
            call.cancel()

    async def upload_result(self, job_id: str, attempt: int, path: Path, sha256: str,
                            name: str) -> None:
        """Streams the file at path as one output of the attempt; returns once the server
        holds it durably under sha256 (it answers only then)."""
        size = os.path.getsize(path)
        try:
            reply = await self._upload(_result_chunks(job_id, attempt, path, sha256, name, size))
        except grpc.aio.AioRpcError as exc:
            raise wire.error_from_rpc(exc) from exc
        assert isinstance(reply, jobs_pb2.UploadResultResponse)
        if reply.sha256 != sha256 or reply.size != size:
            raise errors.IntegrityError(f"the server stored {reply.sha256[:12]} ({reply.size} "
                                        f"bytes) for output {name!r}, not {sha256[:12]} "
                                        f"({size} bytes)")


async def _result_chunks(job_id: str, attempt: int, path: Path, sha256: str, name: str,
                         size: int) -> AsyncIterator[jobs_pb2.ResultChunk]:
    """The ResultChunk messages of one output, each read in a thread; the first carries the
    job, the attempt, the hash, the size and the name, as the contract asks."""
    handle = await asyncio.to_thread(open, path, "rb")
    offset = 0
    try:
        while True:
            data = await asyncio.to_thread(handle.read, RESULT_CHUNK_BYTES)
            if offset == 0:
                yield jobs_pb2.ResultChunk(job_id=job_id, attempt=attempt, sha256=sha256,
                                           total_size=size, name=name, offset=0, data=data)
            elif data:
                yield jobs_pb2.ResultChunk(job_id=job_id, sha256=sha256, attempt=attempt,
                                           offset=offset, data=data)
            if not data:
                return
            offset += len(data)
    finally:
        handle.close()
