"""Test-side parties of the jobs protocol over real mutual TLS: an admin that submits and
reads jobs, and a scripted worker that speaks the Work stream message by message, so tests
can play a worker that stalls, dies, or sends a stale attempt's result."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc

from photonic import jobs_wire
from photonic.jobs_model import (
    Assignment,
    Held,
    Job,
    JobFilter,
    JobOutput,
    JobRequest,
    ServerOrder,
    WorkerHello,
    WorkerReport,
)
from photonic.tls import channel_credentials
from photonic.v1 import jobs_pb2, jobs_pb2_grpc
from tests.support.daemons import ServerHandle, wait_until

CALL_TIMEOUT_S = 20.0


def jobs_stub(server: ServerHandle, agent_id: str) -> tuple[grpc.Channel,
                                                             jobs_pb2_grpc.PhotonicJobsStub]:
    pki = server.pki
    channel = grpc.secure_channel(server.endpoint, channel_credentials(
        pki.agent_cert(agent_id), pki.agent_key(agent_id), pki.ca))
    return channel, jobs_pb2_grpc.PhotonicJobsStub(channel)  # type: ignore[no-untyped-call]


class Admin:
    def __init__(self, server: ServerHandle, agent_id: str = "admin") -> None:
        self.channel, self.stub = jobs_stub(server, agent_id)

    def submit(self, kind: str, shas: Sequence[str] = (), **fields: object) -> Job:
        request = JobRequest(kind, input_sha256=tuple(shas), **fields)  # type: ignore[arg-type]
        return jobs_wire.job_from_wire(self.stub.SubmitJob(jobs_wire.request_to_wire(request),
                                                           timeout=CALL_TIMEOUT_S))

    def get(self, job_id: str) -> Job:
        return jobs_wire.job_from_wire(self.stub.GetJob(jobs_pb2.GetJobRequest(job_id=job_id),
                                                        timeout=CALL_TIMEOUT_S))

    def children(self, parent_id: str) -> list[Job]:
        reply = self.stub.ListJobs(jobs_wire.filter_to_wire(
            JobFilter(parent_id=parent_id, limit=10_000)), timeout=CALL_TIMEOUT_S)
        return [jobs_wire.job_from_wire(j) for j in reply.jobs]

    def cancel(self, job_id: str) -> Job:
        return jobs_wire.job_from_wire(self.stub.CancelJob(
            jobs_pb2.CancelJobRequest(job_id=job_id), timeout=CALL_TIMEOUT_S))

    def wait_state(self, job_id: str, *states: str, timeout_s: float = 30) -> Job:
        job: Job = wait_until(lambda: (j := self.get(job_id)).state.value in states and j,
                              timeout_s, message=f"job {job_id} in {states}")
        return job

    def close(self) -> None:
        self.channel.close()


class ScriptedWorker:
    """One Work stream, driven by the test: every order the server sends is queued for the
    test to read; every report is the test's to send."""

    def __init__(self, server: ServerHandle, agent_id: str, capabilities: Sequence[str],
                 max_concurrent: int = 1, held: Sequence[Held] = ()) -> None:
        self.agent_id = agent_id
        self.channel, self.stub = jobs_stub(server, agent_id)
        self._out: queue.Queue[jobs_pb2.WorkerMessage | None] = queue.Queue()
        self.orders: queue.Queue[ServerOrder | grpc.RpcError] = queue.Queue()
        self._out.put(jobs_wire.report_to_wire(WorkerHello(
            tuple(capabilities), max_concurrent, tuple(held), "test")))
        self._call = self.stub.Work(self._requests())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _requests(self) -> Iterator[jobs_pb2.WorkerMessage]:
        while (message := self._out.get()) is not None:
            yield message

    def _read(self) -> None:
        try:
            for message in self._call:
                order = jobs_wire.order_from_wire(message)
                if order is not None:
                    self.orders.put(order)
        except grpc.RpcError as exc:
            self.orders.put(exc)

    def send(self, report: WorkerReport) -> None:
        self._out.put(jobs_wire.report_to_wire(report))

    def next_order(self, timeout_s: float = 20) -> ServerOrder:
        order = self.orders.get(timeout=timeout_s)
        if isinstance(order, grpc.RpcError):
            raise order
        return order

    def next_assignment(self, timeout_s: float = 20) -> Assignment:
        while True:
            order = self.next_order(timeout_s)
            if isinstance(order, Assignment):
                return order

    def upload(self, job: Job, data: bytes, name: str) -> JobOutput:
        sha = hashlib.sha256(data).hexdigest()
        chunks = [jobs_pb2.ResultChunk(job_id=job.job_id, attempt=job.attempts, sha256=sha,
                                       total_size=len(data), name=name, offset=0,
                                       data=data[:65536])]
        for offset in range(65536, len(data), 65536):
            chunks.append(jobs_pb2.ResultChunk(offset=offset, data=data[offset:offset + 65536]))
        self.stub.UploadResult(iter(chunks), timeout=CALL_TIMEOUT_S)
        return JobOutput(sha, name, len(data), recipe={"executor": "scripted"})

    def close(self) -> None:
        self._out.put(None)
        self._call.cancel()
        self.channel.close()


def input_file(server: ServerHandle, sha256: str) -> Path:
    return server.storage / "objects" / sha256[:2] / sha256[2:4] / sha256
