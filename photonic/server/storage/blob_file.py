"""A stored object as a read-only binary file, over a BlobStore's ranged reads: what Pillow
(thumbnails) and exifread (details) read from, whichever store holds the bytes."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from photonic import errors
from photonic.server.storage.blobs import BlobReader, BlobStore
from photonic.server.storage.local import LocalBlobStore

BUFFER_BYTES = 1 << 20
"""One ranged read per MiB: a remote store answers each read with a request."""
GONE = "that content is not in the store (quarantined until an agent sends it again)"


class BlobFile(io.RawIOBase):
    """Seekable, read-only; closing it closes the reader."""

    def __init__(self, reader: BlobReader) -> None:
        super().__init__()
        self._reader = reader
        self._pos = 0

    @property
    def size(self) -> int:
        return self._reader.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._reader.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._reader.read_at(self._pos, len(buffer))
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._reader.close()
        super().close()


def open_blob(blobs: BlobStore, sha256: str) -> io.BufferedReader:
    """The object opened for reading; NotFound (in words for a person) when it is gone.
    Blocking: call it from a thread."""
    try:
        reader = blobs.open(sha256)
    except errors.NotFound:
        raise errors.NotFound(GONE) from None
    return io.BufferedReader(BlobFile(reader), BUFFER_BYTES)


def open_as_file(blobs: BlobStore, sha256: str, spool: Path) -> BinaryIO:
    """The object as a real open file (with a descriptor, for readers that mmap it, such as
    the thumbnailer): a local store's own object file, or a remote object copied into an
    anonymous temporary file in spool (gone when closed). Blocking."""
    if isinstance(blobs, LocalBlobStore):
        try:
            return open(blobs.store.object_file(sha256), "rb")
        except FileNotFoundError:
            raise errors.NotFound(GONE) from None
    spool.mkdir(parents=True, exist_ok=True)
    copy = tempfile.TemporaryFile(dir=spool)  # noqa: SIM115 - returned open
    try:
        with open_blob(blobs, sha256) as source:
            shutil.copyfileobj(source, copy, BUFFER_BYTES)
        copy.seek(0)
    except BaseException:
        copy.close()
        raise
    return copy
