"""Job inputs out and outputs in: FetchBlob reads a stored object from an offset;
UploadResult stores an output under the same rule as sync (verified SHA-256, durable before
it is acknowledged, nothing half-written visible); a finished job's outputs are linked into
the library under `_derived/<kind>/<input's library path>.<ext>`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from photonic import errors
from photonic.jobs_model import Job, JobOutput
from photonic.models import ConflictPolicy, ContentHash, ManifestEntry, is_content_hash
from photonic.server import faults
from photonic.server.library import Library
from photonic.server.object_reader import read_object
from photonic.server.shared.claims import UploadClaims
from photonic.server.storage.blobs import BlobStore, BlobUpload
from photonic.server.thread_work import ThreadWork

BLOB_CHUNK_BYTES = 1 << 20
CLAIM_WAIT_S = 60.0
"""How long an output upload waits for another upload of the same content to end."""
DERIVED_AGENT = "_derived"
MAX_OUTPUT_NAME_CHARS = 200


@dataclass(frozen=True)
class ResultHeader:
    """What the first ResultChunk of an upload declares."""

    job_id: str
    attempt: int
    sha256: str
    size: int
    name: str


def check_output_name(name: str) -> str:
    """An output's name is one plain file name: it becomes part of a library path."""
    if (not name or "/" in name or "\\" in name or "\x00" in name or name in (".", "..")
            or len(name) > MAX_OUTPUT_NAME_CHARS):
        raise errors.InvalidInput(f"output name {name[:80]!r} is not a plain file name")
    return name


class ResultStore:
    def __init__(self, store: BlobStore, library: Library, claims: UploadClaims,
                 max_size_bytes: int) -> None:
        self._store = store
        self._library = library
        self._claims = claims
        self._max_size = max_size_bytes

    # FetchBlob ------------------------------------------------------------------------------

    async def read(self, sha256: str, offset: int) -> AsyncIterator[tuple[int, bytes, int]]:
        """(offset, data, total size) chunks of a stored object from offset on."""
        async for chunk in read_object(self._store, sha256, offset, BLOB_CHUNK_BYTES):
            yield chunk

    # UploadResult ---------------------------------------------------------------------------

    def check_header(self, h: ResultHeader) -> None:
        if not is_content_hash(h.sha256):
            raise errors.InvalidInput("an output's sha256 must be 64 lowercase hex digits")
        if h.size <= 0 or h.size > self._max_size:
            raise errors.InvalidInput(f"an output must be 1 to {self._max_size} bytes")
        check_output_name(h.name)

    async def receive(self, h: ResultHeader, first: bytes, first_offset: int,
                      rest: AsyncIterator[tuple[int, bytes]]) -> None:
        """Stores the output's bytes as an object once they hash to h.sha256 and are durable;
        raises IntegrityError (nothing kept) when they do not. An object already stored
        intact is not written again: the bytes are read and dropped."""
        await self._claim(h.sha256)
        opened: list[BlobUpload] = []  # put here by the thread that opens it: never lost
        work = ThreadWork()
        try:
            if not await work.run(self._stored_intact, h.sha256):
                await work.run(self._open, h, opened)
            upload = opened[0] if opened else None
            await self._append(work, upload, h, first_offset, first)
            async for offset, data in rest:
                await self._append(work, upload, h, offset, data)
            if upload is not None:
                await work.run(self._commit, upload)
            faults.hit("after_job_output_stored")
        finally:
            # Cut off (the worker vanished) while a thread opened, filled or committed the
            # partial: that thread runs on, so the partial is dropped, and the claim
            # released, only once it is done.
            await work.settled()
            for upload in opened:
                if not upload.closed:
                    await asyncio.to_thread(upload.discard)
            self._claims.release(h.sha256)

    async def _claim(self, sha256: str) -> None:
        """Waits while another upload (a job on this server, or on another server sharing
        the store) stores the same content, as two crops of one photo do: once it is done the
        bytes are usually stored and this upload only reads and drops them. Transient after
        CLAIM_WAIT_S, so the worker retries the upload rather than the job failing a try."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLAIM_WAIT_S
        while not await self._claims.try_claim(sha256):
            left = deadline - loop.time()
            if left <= 0:
                raise errors.Transient("this content is being stored by another upload; retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._claims.wait_released(sha256), min(left, 1.0))

    def _open(self, h: ResultHeader, opened: list[BlobUpload]) -> None:
        opened.append(self._store.partial(ContentHash(h.sha256), h.size, resume=False))

    def _commit(self, upload: BlobUpload) -> None:
        upload.finish()
        self._store.commit(upload)

    def _stored_intact(self, sha256: str) -> bool:
        return self._store.has(sha256) and self._store.check(sha256).intact

    async def _append(self, work: ThreadWork, upload: BlobUpload | None, h: ResultHeader,
                      offset: int, data: bytes) -> None:
        if upload is None or not data:
            return
        if offset != upload.offset:
            raise errors.InvalidInput(f"output chunk at offset {offset}; expected "
                                      f"{upload.offset}")
        if offset + len(data) > h.size:
            raise errors.IntegrityError(f"output {h.sha256[:12]} is longer than the declared "
                                        f"{h.size} bytes")
        await work.run(upload.append, data)

    # Done -----------------------------------------------------------------------------------

    async def publish(self, job: Job, outputs: Sequence[JobOutput]) -> list[JobOutput]:
        """Links each verified output into the library beside its input's path, durable
        before it returns; a second run keeps the earlier output as a version."""
        items = []
        for o in outputs:
            rel = derived_path(job, o.name)
            items.append((ManifestEntry(ContentHash(o.sha256), o.size, job.kind, rel),
                          PurePosixPath(rel)))
        committed = await asyncio.to_thread(self._library.record_many, DERIVED_AGENT, items,
                                            ConflictPolicy.AUTO)
        published: list[JobOutput] = []
        for o, result in zip(outputs, committed, strict=True):
            if isinstance(result, errors.Unstorable):
                raise result
            published.append(JobOutput(o.sha256, o.name, o.size,
                                       result.library_path.removeprefix("library/"), o.recipe))
        return published

    def object_size(self, sha256: str) -> int | None:
        with contextlib.suppress(OSError):
            st = self._store.stat(sha256)
            return None if st is None else st.size
        return None


def derived_path(job: Job, output_name: str) -> str:
    """`<input's library path>.<what the output adds>`: `a.jpg` + `a.png` -> `a.jpg.png`,
    `a.jpg` + `a.face2.jpg` -> `a.jpg.face2.jpg`; an input with no library path is named by
    its hash."""
    base = job.input_path or f"by-hash/{job.input_sha256[0] if job.input_sha256 else job.job_id}"
    stem = PurePosixPath(base).stem
    suffix = output_name[len(stem) + 1:] if output_name.startswith(stem + ".") else output_name
    return f"{base}.{suffix}"

