"""Images submitted for processing as an upload: a ZIP from `photonic jobs submit --zip`
(SubmitZip), or photos and ZIPs from the web processing page. Every file is received to the
server's disk within its cap; a ZIP is judged whole before any entry is read (media/safezip)
and its images are copied out and hashed; only once every file of the upload has passed are
the images stored as objects, placed in the library under `_uploads/<first file>-<id>/` and
made one batch job. A refused upload leaves nothing behind: no object, no library entry, no
job, no spooled file. The spool is under the store's partial/, so a local store takes each
staged image as its object without copying it (BlobStore.adopt)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import BinaryIO

from photonic import errors
from photonic.jobs_model import Job, JobRequest
from photonic.media.safezip import SafeZip, ZipLimits, is_image_name
from photonic.models import ConflictPolicy, ContentHash, ManifestEntry
from photonic.server.jobs.inputs import JobInput
from photonic.server.jobs.kinds import job_kind
from photonic.server.jobs.service import JobsService
from photonic.server.library import Library
from photonic.server.shared.claims import UploadClaims
from photonic.server.storage.blobs import BlobStore
from photonic.server.storage.local import LocalBlobStore
from photonic.server.store import ContentStore
from photonic.server.thread_work import ThreadWork

UPLOADS_AGENT = "_uploads"
SPOOL_FOLDER = "uploads"
"""Under the store's partial/: the files of uploads being received (removed on start)."""
MAX_NAME_CHARS = 200
"""The longest file name a loose photo may have (it becomes a library path)."""
_COPY_BLOCK = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

Audit = Callable[[str, str, str, str, str], Awaitable[None]]


@dataclass(frozen=True)
class IntakeLimits:
    zip: ZipLimits
    """What one archive may hold; its max_entry_bytes also caps one loose photo."""
    max_zip_bytes: int
    """The largest one archive may be, as received (compressed)."""
    max_children: int
    """The most images one upload may turn into child jobs."""


@dataclass(frozen=True)
class StagedImage:
    rel: PurePosixPath
    """Where the image goes inside the upload's library folder."""
    temp: Path
    sha256: str
    size: int


class _HashingFile:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self._out.write(data)


class UploadIntake:
    def __init__(self, jobs: JobsService, store: ContentStore, library: Library,
                 claims: UploadClaims, audit: Audit, limits: IntakeLimits,
                 blobs: BlobStore | None = None) -> None:
        """store: its partial/ folder holds the spool; blobs: where the photos are stored
        (None: store's own objects/)."""
        self._jobs = jobs
        self._blobs = blobs if blobs is not None else LocalBlobStore(store)
        self._library = library
        self._claims = claims
        self._audit = audit
        self.limits = limits
        self._spool = store.root / "partial" / SPOOL_FOLDER
        self._spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        for left in self._spool.iterdir():  # an upload cut short by a crash or a stop
            _remove(left)

    def open(self, request: JobRequest) -> StagedUpload:
        """A new upload for this request, refused at once when its kind or parameters are
        wrong, before any byte is received. Use it as `async with`: its files are removed
        when the block ends, whether it was submitted or refused."""
        job_kind(request.kind).check(request.params)
        return StagedUpload(self, request, self._spool, uuid.uuid4().hex[:8])

    async def submit_zip(self, submitter: str, request: JobRequest, file_name: str,
                         data: AsyncIterator[bytes]) -> Job:
        """SubmitZip: one archive, one batch."""
        async with self.open(request) as upload:
            await upload.add_zip(file_name, data)
            return await upload.submit(submitter, "SubmitZip")

    async def commit(self, submitter: str, action: str, request: JobRequest,
                     staged: Sequence[StagedImage], folder: str, label: str) -> Job:
        """Stores the staged images as objects, places them in the library folder
        `_uploads/<folder>/` and makes one batch job over them; audited as `action`."""
        inputs = await self._store_all(staged, folder)
        job = await self._jobs.enqueue(submitter, request, inputs, batch=True)
        await self._audit(submitter, action, job.job_id, "ok",
                          f"{request.kind} x{len(inputs)} from {label[:80]}")
        return job

    async def _store_all(self, staged: Sequence[StagedImage], folder: str) -> list[JobInput]:
        for s in staged:
            await self._store_object(s)
        items = [(ManifestEntry(ContentHash(s.sha256), s.size, folder, str(s.rel)), s.rel)
                 for s in staged]
        placed = await asyncio.to_thread(self._library.record_many, UPLOADS_AGENT, items,
                                         ConflictPolicy.AUTO)
        for result in placed:
            if isinstance(result, errors.Unstorable):
                raise result
        return [JobInput(s.sha256, f"{UPLOADS_AGENT}/{folder}/{s.rel}", s.size, 0)
                for s in staged]

    async def _store_object(self, s: StagedImage) -> None:
        while not await self._claims.try_claim(s.sha256):
            await self._claims.wait_released(s.sha256)
        work = ThreadWork()
        try:
            await work.run(self._put_object, s)
        finally:
            await work.settled()  # a cut upload's thread still stores: the claim waits for it
            self._claims.release(s.sha256)

    def _put_object(self, s: StagedImage) -> None:
        """The staged copy becomes the object (a local store adopts the file, which was hashed
        as it was written: its bytes are not written twice), or is uploaded (S3)."""
        if self._blobs.has(s.sha256) and self._blobs.check(s.sha256).intact:
            return
        if self._blobs.adopt(ContentHash(s.sha256), s.temp, s.size):
            return
        upload = self._blobs.partial(ContentHash(s.sha256), s.size, resume=False)
        try:
            with open(s.temp, "rb") as source:
                while block := source.read(_COPY_BLOCK):
                    upload.append(block)
            upload.finish()
            self._blobs.commit(upload)
        finally:
            if not upload.closed:
                upload.discard()


class StagedUpload:
    """One upload being received: every file it holds sits in the spool under one token until
    submit stores them all, or the upload is refused and they are removed."""

    def __init__(self, intake: UploadIntake, request: JobRequest, spool: Path,
                 token: str) -> None:
        self._intake = intake
        self._request = request
        self._spool = spool
        self._token = token
        self._staged: list[StagedImage] = []
        self._names: set[str] = set()
        self._label = ""
        self._temps = itertools.count()

    async def __aenter__(self) -> StagedUpload:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await asyncio.to_thread(self._discard)

    @property
    def image_count(self) -> int:
        return len(self._staged)

    async def add_zip(self, file_name: str, data: AsyncIterator[bytes]) -> None:
        """Receives an archive (at most max_zip_bytes), judges it whole and copies out each of
        its images, keeping the paths it gives them."""
        limits = self._intake.limits
        self._note_file(file_name)
        spooled = self._temp("zip")
        received = await _receive(spooled, data, limits.max_zip_bytes,
                                  f"the archive {_shown(file_name)}")
        if received.size == 0:
            raise errors.InvalidInput(f"{_shown(file_name)} is empty, not a ZIP archive")
        try:
            await asyncio.to_thread(self._copy_out_all, spooled)
        finally:
            await asyncio.to_thread(_remove, spooled)

    def _copy_out_all(self, spooled: Path) -> None:
        # Every entry is copied out and checked before any is stored: an entry that proves to
        # be a bomb halfway leaves no object, library entry or job.
        with SafeZip(spooled, self._intake.limits.zip) as archive:
            images = archive.images()
            self._check_count(len(images))
            for image in images:
                temp = self._temp("entry")
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with open(fd, "wb") as out:
                    hashing = _HashingFile(out)
                    archive.copy(image, hashing)  # type: ignore[arg-type]
                self._stage(PurePosixPath(image.name), temp, hashing)

    async def add_photo(self, file_name: str, data: AsyncIterator[bytes]) -> None:
        """Receives one photo (at most max_entry_bytes), judged an image by its name as a
        ZIP's entries are; it goes into the library folder under its base name."""
        name = _base_name(file_name)
        if any(not c.isprintable() for c in name) or len(name) > MAX_NAME_CHARS:
            raise errors.InvalidInput(f"the file name {_shown(file_name)} has a control "
                                      f"character or is longer than {MAX_NAME_CHARS} "
                                      "characters; rename it")
        if not is_image_name(name):
            raise errors.InvalidInput(f"{_shown(file_name)} is not an image (send JPEG, PNG, "
                                      "TIFF, HEIC, WebP or RAW photos, or a .zip of them)")
        self._note_file(file_name)
        self._check_count(1)
        temp = self._temp("photo")
        limit = self._intake.limits.zip.max_entry_bytes
        hashing = await _receive(temp, data, limit, f"the photo {_shown(file_name)}")
        if hashing.size == 0:
            raise errors.InvalidInput(f"the photo {_shown(file_name)} is empty")
        self._stage(PurePosixPath(name), temp, hashing)

    async def submit(self, submitter: str, action: str) -> Job:
        """Stores every staged image and makes the batch job; audited as `action`."""
        if not self._staged:
            raise errors.InvalidInput("the upload holds no image")
        return await self._intake.commit(submitter, action, self._request, self._staged,
                                         _folder_name(self._label, self._token), self._label)

    def _note_file(self, file_name: str) -> None:
        if not self._label:
            self._label = file_name

    def _check_count(self, more: int) -> None:
        most = self._intake.limits.max_children
        if len(self._staged) + more > most:
            raise errors.InvalidInput(f"the upload holds more than {most} images; a batch "
                                      f"may have at most {most}")

    def _stage(self, rel: PurePosixPath, temp: Path, hashing: _HashingFile) -> None:
        rel = self._unique(rel)
        self._staged.append(StagedImage(rel, temp, hashing.digest.hexdigest(), hashing.size))

    def _unique(self, rel: PurePosixPath) -> PurePosixPath:
        """rel, or `name-2.ext`, `name-3.ext`... when another file of the upload took it."""
        candidate, n = rel, 1
        while str(candidate).lower() in self._names:
            n += 1
            candidate = rel.with_name(f"{rel.stem}-{n}{rel.suffix}")
        self._names.add(str(candidate).lower())
        return candidate

    def _temp(self, what: str) -> Path:
        return self._spool / f"{self._token}.{next(self._temps)}.{what}"

    def _discard(self) -> None:
        for temp in self._spool.glob(f"{self._token}.*"):
            _remove(temp)


async def _receive(path: Path, data: AsyncIterator[bytes], limit: int,
                   what: str) -> _HashingFile:
    fd = await asyncio.to_thread(os.open, path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as out:
        hashing = _HashingFile(out)
        await _copy_capped(data, hashing, limit, what)
    return hashing


async def _copy_capped(data: AsyncIterator[bytes], out: _HashingFile, limit: int,
                       what: str) -> None:
    async for block in data:
        if out.size + len(block) > limit:
            raise errors.TooLarge(f"{what} is larger than the {limit} bytes it may be")
        await asyncio.to_thread(out.write, block)


def _base_name(file_name: str) -> str:
    """The last component of a client's file name (browsers may send a Windows path)."""
    return PurePosixPath(file_name.replace("\\", "/")).name


def _shown(file_name: str) -> str:
    """A client's file name fit for an error message: its base name, printable, bounded."""
    name = _base_name(file_name)
    return repr("".join(c if c.isprintable() else "?" for c in name)[:80] or "(no name)")


def _folder_name(file_name: str, token: str) -> str:
    stem = PurePosixPath(_base_name(file_name)).stem if file_name else "upload"
    return f"{_UNSAFE.sub('_', stem).strip('._-')[:80] or 'upload'}-{token}"


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
