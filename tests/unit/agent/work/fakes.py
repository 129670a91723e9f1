"""Fakes at the work service's seams: a server-side PhotonicJobs servicer on a real grpc.aio
server (127.0.0.1:0, real mutual TLS) that records what the worker says and pushes what a test
orders, and an executor pool whose jobs a test can hold, fail or watch being cancelled."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from photonic.agent.executors.base import (
    Execution,
    ExecutorError,
    ExecutorInfo,
    HandBack,
    JobTicket,
    Output,
)
from photonic.jobs_model import (
    Assignment,
    Job,
    JobId,
    JobState,
    ServerOrder,
    StreamTerms,
    WorkerHello,
    WorkerReport,
)
from photonic.jobs_wire import order_to_wire, report_from_wire
from photonic.media.chunks import compress_chunk
from photonic.tls import server_credentials
from photonic.v1 import jobs_pb2
from tests.support.pki import TestPki

BLOB_CHUNK_BYTES = 64 * 1024
INFO = ExecutorInfo("bgremove", "1.2.3", "seg.tflite", "ab" * 32)


async def wait_until(predicate: Callable[[], object], timeout_s: float = 10.0,
                     message: str = "condition") -> None:
    """Yields to the loop until predicate holds; fails the test after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
        await asyncio.sleep(0.005)


def make_job(job_id: str, sha256: str, attempt: int = 1, kind: str = "bgremove") -> Job:
    return Job(job_id=JobId(job_id), kind=kind, state=JobState.READING,
               input_sha256=(sha256,), params={"threshold": 0.5}, attempts=attempt,
               timeout_ms=30_000)


@dataclass
class FakeStream:
    """One Work stream as the server sees it."""

    reports: list[WorkerReport] = field(default_factory=list)
    orders: asyncio.Queue[ServerOrder | None] = field(default_factory=asyncio.Queue)
    ended: bool = False

    @property
    def hello(self) -> WorkerHello:
        first = self.reports[0]
        assert isinstance(first, WorkerHello)
        return first

    def of(self, kind: type[WorkerReport]) -> list[WorkerReport]:
        return [r for r in self.reports if isinstance(r, kind)]


@dataclass
class Upload:
    first: jobs_pb2.ResultChunk
    data: bytes
    messages: int


class FakeJobsServer:
    """The three worker RPCs, scripted by the test."""

    def __init__(self) -> None:
        self.streams: list[FakeStream] = []
        self.blobs: dict[str, bytes] = {}
        self.fetches: list[int] = []  # the offset of each FetchBlob call
        self.cut_first_fetch_after: int | None = None
        self.lz4 = False
        self.uploads: list[Upload] = []
        self.on_report: Callable[[FakeStream, WorkerReport], None] | None = None
        """Called with each report as it is read (a test answers it as a server would)."""
        self.upload_gates: dict[str, asyncio.Event] = {}
        """A job's output uploads wait for its gate (set) before they are answered."""
        self.server = grpc.aio.server()
        self.port = 0

    async def start(self, pki: TestPki) -> str:
        handlers = {
            "Work": grpc.stream_stream_rpc_method_handler(
                self._work, request_deserializer=jobs_pb2.WorkerMessage.FromString,
                response_serializer=jobs_pb2.WorkAssignment.SerializeToString),
            "FetchBlob": grpc.unary_stream_rpc_method_handler(
                self._fetch, request_deserializer=jobs_pb2.FetchBlobRequest.FromString,
                response_serializer=jobs_pb2.BlobChunk.SerializeToString),
            "UploadResult": grpc.stream_unary_rpc_method_handler(
                self._upload, request_deserializer=jobs_pb2.ResultChunk.FromString,
                response_serializer=jobs_pb2.UploadResultResponse.SerializeToString),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("photonic.v1.PhotonicJobs", handlers),))
        self.port = self.server.add_secure_port("127.0.0.1:0", server_credentials(
            pki.server_cert, pki.server_key, pki.ca))
        await self.server.start()
        return f"localhost:{self.port}"

    async def stop(self) -> None:
        await self.server.stop(0)

    @property
    def stream(self) -> FakeStream:
        return self.streams[-1]

    def assign(self, job: Job) -> None:
        self.stream.orders.put_nowait(Assignment(job, 0))

    def order(self, order: ServerOrder) -> None:
        self.stream.orders.put_nowait(order)

    async def _work(self, requests: AsyncIterator[jobs_pb2.WorkerMessage],
                    context: grpc.aio.ServicerContext) -> AsyncIterator[jobs_pb2.WorkAssignment]:
        stream = FakeStream()
        self.streams.append(stream)
        reader = asyncio.create_task(self._read(requests, stream))
        yield order_to_wire(StreamTerms(heartbeat_ms=60_000, lease_ms=180_000))
        while (order := await stream.orders.get()) is not None:
            yield order_to_wire(order)
        reader.cancel()

    async def _read(self, requests: AsyncIterator[jobs_pb2.WorkerMessage],
                    stream: FakeStream) -> None:
        async for message in requests:
            report = report_from_wire(message)
            if report is not None:
                stream.reports.append(report)
                if self.on_report is not None:
                    self.on_report(stream, report)
        stream.ended = True
        stream.orders.put_nowait(None)  # the worker half-closed: end the call

    async def _fetch(self, request: jobs_pb2.FetchBlobRequest,
                     context: grpc.aio.ServicerContext) -> AsyncIterator[jobs_pb2.BlobChunk]:
        self.fetches.append(request.offset)
        data = self.blobs[request.sha256]
        cut = self.cut_first_fetch_after if len(self.fetches) == 1 else None
        for offset in range(request.offset, len(data), BLOB_CHUNK_BYTES):
            if cut is not None and offset >= cut:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "connection cut")
            raw = data[offset:offset + BLOB_CHUNK_BYTES]
            body, packed = compress_chunk(raw, min_saving=0.0) if self.lz4 else (raw, False)
            yield jobs_pb2.BlobChunk(offset=offset, data=body, lz4=packed, raw_size=len(raw),
                                     total_size=len(data))

    async def _upload(self, requests: AsyncIterator[jobs_pb2.ResultChunk],
                      context: grpc.aio.ServicerContext) -> jobs_pb2.UploadResultResponse:
        chunks = [chunk async for chunk in requests]
        gate = self.upload_gates.get(chunks[0].job_id)
        if gate is not None:
            await gate.wait()
        data = b"".join(c.data for c in chunks)
        self.uploads.append(Upload(chunks[0], data, len(chunks)))
        return jobs_pb2.UploadResultResponse(sha256=hashlib.sha256(data).hexdigest(),
                                             size=len(data))


class FakePool:
    """An executor pool: writes one output per input, or waits on `gate`, or raises `error`.
    Tracks how many jobs run at once and which were cancelled."""

    def __init__(self, output_bytes: int = 10) -> None:
        self.gate: asyncio.Event | None = None
        self.error: ExecutorError | None = None
        self.output_bytes = output_bytes
        self.inputs: list[tuple[Path, bytes]] = []
        self.running = 0
        self.most_running = 0
        self.cancelled: list[str] = []
        self.closed = False
        self.listeners: list[Callable[[], None]] = []
        self.report_progress = False
        self.hand_back: str | None = None
        self.infos = [INFO]

    async def probe(self) -> list[ExecutorInfo]:
        return list(self.infos)

    def on_change(self, callback: Callable[[], None]) -> None:
        self.listeners.append(callback)

    async def run(self, kind: str, input_path: Path, output_dir: Path,
                  params: Mapping[str, object], *, timeout_s: float,
                  ticket: JobTicket | None = None) -> Execution:
        self.inputs.append((input_path, input_path.read_bytes()))
        if ticket is not None and self.report_progress:
            ticket.progress(0.5, "rendition 1 of 2")
        if self.hand_back is not None:
            raise HandBack(self.hand_back)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append(input_path.name)
            raise
        finally:
            self.running -= 1
        if self.error is not None:
            raise self.error
        out = output_dir / "result.png"
        out.write_bytes(b"o" * self.output_bytes)
        return Execution([Output(out, "photo.png")], {"mask_fraction": 0.25})

    async def close(self) -> None:
        self.closed = True
