"""The media application layer the web routes call: every method takes ids as the request
gave them, checks them, applies the content rule, and answers domain values (bytes, a
Download, views); no route sees a server path."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from photonic import errors
from photonic.jobs_model import Job
from photonic.media.exif_details import ExifDetails
from photonic.server.media.content_rule import (
    ContentRule,
    MediaCatalog,
    OutputIndex,
)
from photonic.server.media.details import (
    MAX_JOBS,
    ContentView,
    PhotoView,
    location_id_of,
    photo_view,
    read_exif_of,
)
from photonic.server.media.downloads import Download
from photonic.server.media.thumbs import ThumbnailCache
from photonic.server.storage.blob_file import open_as_file
from photonic.server.storage.blobs import BlobStore
from photonic.server.storage.local import LocalBlobStore
from photonic.server.store import ContentStore

THUMB_CACHE = Path("cache") / "thumbs"
"""Beneath the server's storage path."""


class JobsByInput(OutputIndex, Protocol):
    def jobs_taking(self, shas: list[str], limit: int) -> list[Job]: ...


class MediaService:
    def __init__(self, store: BlobStore | ContentStore, catalog: MediaCatalog,
                 jobs: JobsByInput,
                 storage_path: Path, *, thumb_concurrency: int = 2,
                 copies: Callable[[Sequence[str]], Mapping[str, int]] | None = None) -> None:
        """store: where the bytes are (a ContentStore is read through its LocalBlobStore);
        copies: each content's copies on the server side (replication), for the details."""
        self._store = LocalBlobStore(store) if isinstance(store, ContentStore) else store
        self._copies = copies
        self._catalog = catalog
        self._jobs = jobs
        self._rule = ContentRule(catalog, jobs)
        spool = storage_path / THUMB_CACHE
        self.thumbs = ThumbnailCache(spool, lambda sha: open_as_file(self._store, sha, spool),
                                     concurrency=thumb_concurrency)

    async def servable(self, sha256: str) -> str:
        """The catalog's file name of servable content; InvalidInput or NotFound otherwise."""
        return await asyncio.to_thread(self._rule.name_of, sha256)

    async def thumbnail(self, sha256: str, size: int) -> bytes:
        await self.servable(sha256)
        return await self.thumbs.get(sha256, size)

    async def download(self, sha256: str) -> Download:
        """The open content, to be read with chunks() (which closes it) or closed."""
        name = await self.servable(sha256)
        return await asyncio.to_thread(Download.open, self._store, sha256, name)

    async def content(self, sha256: str) -> ContentView:
        await self.servable(sha256)
        size, exif = await asyncio.to_thread(read_exif_of, self._store, sha256)
        return ContentView(sha256, size, exif)

    async def photo(self, location_id: str) -> PhotoView:
        """A library path by the id the library listing gives it."""
        number = location_id_of(location_id)
        row = await asyncio.to_thread(self._catalog.location, number)
        if row is None:
            raise errors.NotFound(f"no photo {number}")
        shas = list(dict.fromkeys(v.sha256 for v in reversed(row.versions)))
        jobs = await asyncio.to_thread(self._jobs.jobs_taking, shas, MAX_JOBS)
        head = next((v.sha256 for v in row.versions if v.version == row.head_version), None)
        if head is None:
            raise errors.NotFound(f"photo {number} has no current version")
        try:
            _, exif = await asyncio.to_thread(read_exif_of, self._store, head)
        except errors.NotFound:  # quarantined: the rest of the details still stand
            exif = ExifDetails()
        counts = await asyncio.to_thread(self._copies, shas) if self._copies else None
        return photo_view(row, exif, jobs, counts)
