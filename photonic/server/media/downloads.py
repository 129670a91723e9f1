"""A stored content's bytes for a download: opened once (objects are read-only after
commit, so what was opened is what is sent), read in chunks from a worker thread, from
whichever BlobStore holds them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from photonic import errors
from photonic.server.storage.blob_file import GONE
from photonic.server.storage.blobs import BlobReader, BlobStore

CHUNK_BYTES = 1 << 20


class Download:
    """One open object; chunks() reads it to the end and closes it, close() ends it early."""

    def __init__(self, reader: BlobReader, name: str) -> None:
        self._reader: BlobReader | None = reader
        self.name = name
        self.size = reader.size

    @classmethod
    def open(cls, blobs: BlobStore, sha256: str, name: str) -> Download:
        """Blocking: call it from a thread."""
        try:
            return cls(blobs.open(sha256), name)
        except errors.NotFound:
            raise errors.NotFound(GONE) from None

    async def chunks(self, start: int = 0, end: int | None = None
                     ) -> AsyncGenerator[bytes, None]:
        """The bytes from start up to end (exclusive; None: the end of the object), one
        CHUNK_BYTES read at a time: a Range request reads only its part."""
        offset, stop = start, self.size if end is None else min(end, self.size)
        try:
            while offset < stop and self._reader is not None:
                data = await asyncio.to_thread(self._reader.read_at, offset,
                                               min(CHUNK_BYTES, stop - offset))
                if not data:
                    raise errors.IntegrityError("the stored object ended early")
                offset += len(data)
                yield data
        finally:
            self.close()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
