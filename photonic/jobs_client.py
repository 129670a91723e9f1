"""The admin's typed API to PhotonicJobs over a mutual-TLS channel: submit, follow, cancel and
download jobs in domain types (jobs_model); protobuf stays behind jobs_wire."""

from __future__ import annotations

import asyncio
import builtins
import json
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import grpc
from google.protobuf.json_format import MessageToDict

from photonic import errors, jobs_wire, wire
from photonic.dialing import first_reachable, wait_ready
from photonic.grpc_options import CHANNEL_OPTIONS
from photonic.jobs_model import Job, JobFilter, JobRequest
from photonic.media.chunks import received_bytes
from photonic.media.hashing import durable_replace, fsync_fd, sha256_file
from photonic.models import is_content_hash
from photonic.v1 import jobs_pb2

ZIP_CHUNK_BYTES = 1 << 20
UNARY_TIMEOUT_S = 30.0
FETCH_ATTEMPTS = 4
FETCH_RETRY_DELAY_S = 0.5
_SERVICE = "/photonic.v1.PhotonicJobs/"



def job_to_dict(job: Job) -> dict[str, Any]:
    """The Job message in protobuf's canonical JSON mapping (camelCase names, enum names,
    64-bit integers as strings), every field present even at its default, so a script can
    rely on the keys."""
    fields = MessageToDict(jobs_wire.job_to_wire(job),
                           always_print_fields_with_no_presence=True)
    order = [f.json_name for f in jobs_pb2.Job.DESCRIPTOR.fields]  # the .proto's order
    return {name: fields[name] for name in order if name in fields}


def to_json(job: Job | Sequence[Job]) -> str:
    """Canonical JSON of one job, or a JSON list of several."""
    if isinstance(job, Job):
        return json.dumps(job_to_dict(job), indent=2)
    return json.dumps([job_to_dict(j) for j in job], indent=2)


class JobsClient:
    """One channel to one server; every method raises a PhotonicError, never a gRPC one."""

    def __init__(self, endpoint: str, credentials: grpc.ChannelCredentials) -> None:
        self.endpoint = endpoint
        self._channel = grpc.aio.secure_channel(endpoint, credentials, options=CHANNEL_OPTIONS)

    def _method(self, kind: str, name: str, response: Any) -> Any:
        factory = getattr(self._channel, kind)
        return factory(_SERVICE + name, request_serializer=_serialize,
                       response_deserializer=response.FromString)

    async def ready(self, timeout_s: float) -> None:
        await wait_ready(self._channel, self.endpoint, timeout_s)

    async def close(self) -> None:
        await self._channel.close()

    async def _unary(self, name: str, request: object, response: Any) -> Any:
        try:
            return await self._method("unary_unary", name, response)(
                request, timeout=UNARY_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise wire.error_from_rpc(exc) from exc

    async def submit(self, request: JobRequest) -> Job:
        m = await self._unary("SubmitJob", jobs_wire.request_to_wire(request), jobs_pb2.Job)
        return jobs_wire.job_from_wire(m)

    async def submit_zip(self, path: Path, request: JobRequest) -> Job:
        """Uploads the archive (the server judges it before reading any entry) and returns
        the batch it became."""
        try:
            source = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except OSError as exc:
            raise errors.InvalidInput(f"cannot read {path}: {exc.strerror}") from None
        call = self._method("stream_unary", "SubmitZip", jobs_pb2.Job)
        try:
            m = await call(_zip_chunks(source, path.name, request))
        except grpc.aio.AioRpcError as exc:
            raise wire.error_from_rpc(exc) from exc
        finally:
            source.close()
        return jobs_wire.job_from_wire(m)

    async def get(self, job_id: str, with_children: bool = False) -> Job:
        m = await self._unary("GetJob", jobs_pb2.GetJobRequest(
            job_id=job_id, with_children=with_children), jobs_pb2.Job)
        return jobs_wire.job_from_wire(m)

    async def cancel(self, job_id: str) -> Job:
        m = await self._unary("CancelJob", jobs_pb2.CancelJobRequest(job_id=job_id),
                              jobs_pb2.Job)
        return jobs_wire.job_from_wire(m)

    async def children(self, parent_id: str, limit: int = 10_000) -> builtins.list[Job]:
        """Every child of a batch (ListJobs by parent)."""
        return await self.list(JobFilter(parent_id=parent_id, limit=limit))

    async def fetch_blob(self, sha256: str, dest: Path, job_id: str = "") -> int:
        """Downloads an object into dest and returns its size. Bytes land in `dest.part`
        first; a broken transfer resumes from what that file holds, the whole is checked
        against sha256, and only then renamed to dest, so dest is never half-written."""
        if not is_content_hash(sha256):
            raise errors.InvalidInput(f"{sha256!r} is not a SHA-256 in hex")
        part = dest.with_name(dest.name + ".part")
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            try:
                await self._fetch_into(part, sha256, job_id)
                break
            except errors.Transient:
                if attempt == FETCH_ATTEMPTS:
                    raise
                await asyncio.sleep(FETCH_RETRY_DELAY_S * attempt)
            except (errors.InvalidInput, errors.IntegrityError):
                # A part file left by another object's download (or a damaged one) cannot
                # be resumed: start over from the first byte, once.
                if attempt == FETCH_ATTEMPTS or not _discard_part(part):
                    raise
        digest, size = await asyncio.to_thread(sha256_file, part)
        if digest != sha256:
            part.unlink(missing_ok=True)
            raise errors.IntegrityError(f"the download of {sha256} hashed to {digest}; "
                                        "deleted it, try again")
        await asyncio.to_thread(durable_replace, part, dest)
        return size

    async def _fetch_into(self, part: Path, sha256: str, job_id: str) -> None:
        """Appends the object's bytes from the part file's length on."""
        with open(part, "ab") as out:
            offset = out.seek(0, os.SEEK_END)
            call = self._method("unary_stream", "FetchBlob", jobs_pb2.BlobChunk)(
                jobs_pb2.FetchBlobRequest(sha256=sha256, offset=offset, job_id=job_id))
            try:
                async for chunk in call:
                    offset = _append_chunk(out, chunk, offset)
            except grpc.aio.AioRpcError as exc:
                raise wire.error_from_rpc(exc) from exc
            finally:
                out.flush()
                fsync_fd(out.fileno())

    async def list(self, f: JobFilter) -> builtins.list[Job]:
        m = await self._unary("ListJobs", jobs_wire.filter_to_wire(f), jobs_pb2.ListJobsResponse)
        return [jobs_wire.job_from_wire(j) for j in m.jobs]


def _discard_part(part: Path) -> bool:
    """Deletes a non-empty part file; False when there was nothing to discard."""
    try:
        if part.stat().st_size == 0:
            return False
    except FileNotFoundError:
        return False
    part.unlink()
    return True


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


async def _zip_chunks(source: BinaryIO, file_name: str,
                      request: JobRequest) -> AsyncIterator[jobs_pb2.ZipChunk]:
    yield jobs_pb2.ZipChunk(submit=jobs_wire.request_to_wire(request), file_name=file_name)
    while data := await asyncio.to_thread(source.read, ZIP_CHUNK_BYTES):
        yield jobs_pb2.ZipChunk(data=data)


def _append_chunk(out: BinaryIO, chunk: jobs_pb2.BlobChunk, offset: int) -> int:
    """Writes one chunk at the expected offset and returns the next offset; a chunk out of
    order or one that would run past the object's declared size is an IntegrityError."""
    data = received_bytes(chunk, offset, "the server")
    if chunk.total_size and offset + len(data) > chunk.total_size:
        raise errors.IntegrityError(f"the server sent more than the object's "
                                    f"{chunk.total_size} bytes")
    out.write(data)
    return offset + len(data)


async def connect_first(endpoints: Sequence[str], credentials: grpc.ChannelCredentials,
                        timeout_s: float = 5.0) -> JobsClient:
    """The first endpoint that answers, tried in order; Transient when none does."""
    return await first_reachable(endpoints, lambda e: JobsClient(e, credentials), timeout_s)
