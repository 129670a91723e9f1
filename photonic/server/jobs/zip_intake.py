"""A ZIP of images submitted for processing: spooled to the server's disk within its size
cap, judged whole before any entry is read (media/safezip), each image stored as an object
and placed in the library under `_uploads/<archive>-<id>/`, then one batch job over them.
A refused archive leaves nothing behind: no object, no library entry, no job."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from photonic import errors
from photonic.jobs_model import Job, JobRequest
from photonic.media.safezip import SafeZip, ZipImage, ZipLimits
from photonic.models import ConflictPolicy, ContentHash, ManifestEntry
from photonic.server.ingest_deps import UploadClaims
from photonic.server.jobs.inputs import JobInput
from photonic.server.jobs.kinds import job_kind
from photonic.server.jobs.service import JobsService
from photonic.server.library import Library
from photonic.server.store import ContentStore

UPLOADS_AGENT = "_uploads"
_COPY_BLOCK = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class _HashingFile:
    """A write-only file that hashes what passes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self._out.write(data)


class ZipIntake:
    def __init__(self, jobs: JobsService, store: ContentStore, library: Library,
                 claims: UploadClaims, limits: ZipLimits, max_zip_bytes: int,
                 max_children: int) -> None:
        self._jobs = jobs
        self._store = store
        self._library = library
        self._claims = claims
        self._limits = limits
        self._max_bytes = max_zip_bytes
        self._max_children = max_children
        self._spool = store.root / "partial" / "zips"

    async def submit(self, submitter: str, request: JobRequest, file_name: str,
                     data: AsyncIterator[bytes]) -> Job:
        kind = job_kind(request.kind)
        kind.check(request.params)
        await asyncio.to_thread(self._spool.mkdir, mode=0o700, parents=True, exist_ok=True)
        token = uuid.uuid4().hex[:8]
        spooled = self._spool / f"{token}.zip"
        try:
            await self._receive(spooled, data)
            archive = await asyncio.to_thread(SafeZip, spooled, self._limits)
            try:
                images = archive.images()
                if len(images) > self._max_children:
                    raise errors.InvalidInput(f"the archive holds {len(images)} images; a "
                                              f"batch may have at most {self._max_children}")
                # Every entry is copied out and checked before any is stored: an entry that
                # proves to be a bomb halfway leaves no object, library entry or job.
                copies = [await asyncio.to_thread(_copy_out, archive, image,
                                                  self._spool / f"{token}.{i}.entry")
                          for i, image in enumerate(images)]
            finally:
                archive.close()
            folder = _folder_name(file_name, token)
            inputs = [await self._store_image(image, temp, sha, size, folder)
                      for image, (temp, sha, size) in zip(images, copies, strict=True)]
        finally:
            await asyncio.to_thread(_remove, spooled)
            for temp in self._spool.glob(f"{token}.*.entry"):
                await asyncio.to_thread(_remove, temp)
        job = await self._jobs.enqueue(submitter, request, inputs, batch=True)
        return job

    async def _receive(self, spooled: Path, data: AsyncIterator[bytes]) -> None:
        fd = await asyncio.to_thread(os.open, spooled, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                     0o600)
        total = 0
        try:
            async for block in data:
                total += len(block)
                if total > self._max_bytes:
                    raise errors.InvalidInput(f"the archive is larger than the "
                                              f"{self._max_bytes} bytes a ZIP may be")
                await asyncio.to_thread(os.write, fd, block)
        finally:
            os.close(fd)
        if total == 0:
            raise errors.InvalidInput("the upload is empty, not a ZIP archive")

    async def _store_image(self, image: ZipImage, temp: Path, sha: str, size: int,
                           folder: str) -> JobInput:
        """An entry's checked copy made an object and placed in the library."""
        while not self._claims.try_claim(sha):
            await asyncio.sleep(0.05)
        try:
            await asyncio.to_thread(self._put_object, temp, sha, size)
        finally:
            self._claims.release(sha)
        rel = PurePosixPath(image.name)
        entry = ManifestEntry(ContentHash(sha), size, folder, str(rel))
        await asyncio.to_thread(self._library.record_many, UPLOADS_AGENT, [(entry, rel)],
                                ConflictPolicy.AUTO)
        return JobInput(sha, f"{UPLOADS_AGENT}/{folder}/{rel}", size, 0)

    def _put_object(self, temp: Path, sha: str, size: int) -> None:
        if self._store.has_object(sha) and self._store.check_object(sha).intact:
            return
        upload = self._store.open_partial(ContentHash(sha), size, resume=False)
        try:
            with open(temp, "rb") as source:
                while block := source.read(_COPY_BLOCK):
                    upload.append(block)
            self._store.commit(upload)
        finally:
            if not upload.closed:
                upload.discard()


def _copy_out(archive: SafeZip, image: ZipImage, temp: Path) -> tuple[Path, str, int]:
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as out:
        hashing = _HashingFile(out)
        size = archive.copy(image, hashing)  # type: ignore[arg-type]
    return temp, hashing.digest.hexdigest(), size


def _folder_name(file_name: str, token: str) -> str:
    stem = PurePosixPath(file_name.replace("\\", "/")).stem if file_name else "upload"
    return f"{_UNSAFE.sub('_', stem).strip('._-')[:80] or 'upload'}-{token}"


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
