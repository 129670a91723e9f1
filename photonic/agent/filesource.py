"""Reads a queued file for upload in chunks, hashing as it goes, and refuses to hand out the
last chunk unless the whole file still hashes to what the manifest promised."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

from photonic.media.chunks import AdaptiveCompressor

PREFIX_READ_BYTES = 1 << 20


class FileChanged(Exception):
    """The file differs from what was queued (rewritten, truncated, vanished)."""


class FileSource:
    """Blocking; each method is called in a worker thread (hashlib and lz4 release the GIL)."""

    def __init__(self, path: Path, *, sha256: str, size: int, mtime_ns: int, offset: int,
                 chunk_bytes: int, compressor: AdaptiveCompressor) -> None:
        self._path = path
        self._sha256 = sha256
        self._size = size
        self._mtime_ns = mtime_ns
        self.offset = offset
        self._chunk_bytes = chunk_bytes
        self._compressor = compressor
        self._hasher = hashlib.sha256()
        self._file: BinaryIO | None = None

    def open(self) -> None:
        try:
            self._file = open(self._path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError as exc:
            raise FileChanged(f"{self._path} vanished before upload") from exc
        st = os.fstat(self._file.fileno())
        if st.st_size != self._size or st.st_mtime_ns != self._mtime_ns:
            raise FileChanged(f"{self._path} changed since it was queued")
        remaining = self.offset
        while remaining > 0:  # the server resumes mid-file; the prefix still counts to the hash
            block = self._file.read(min(PREFIX_READ_BYTES, remaining))
            if not block:
                raise FileChanged(f"{self._path} is shorter than the resume offset")
            self._hasher.update(block)
            remaining -= len(block)

    def next_chunk(self) -> tuple[int, bytes, bool, int] | None:
        """(offset, wire data, lz4?, raw size) of the next chunk, or None at the end."""
        assert self._file is not None
        if self.offset >= self._size:
            return None
        raw = self._file.read(min(self._chunk_bytes, self._size - self.offset))
        if not raw:
            raise FileChanged(f"{self._path} shrank during upload")
        self._hasher.update(raw)
        start = self.offset
        self.offset += len(raw)
        if self.offset >= self._size:
            self._verify_whole()
        data, lz4 = self._compressor.encode(raw)
        return start, data, lz4, len(raw)

    def _verify_whole(self) -> None:
        assert self._file is not None
        st = os.fstat(self._file.fileno())
        if self._hasher.hexdigest() != self._sha256 or st.st_mtime_ns != self._mtime_ns:
            raise FileChanged(f"{self._path} was rewritten during upload")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
