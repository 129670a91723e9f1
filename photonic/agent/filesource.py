"""Reads a queued file for upload in chunks, and refuses to hand out the last chunk if the
file's size or mtime moved since it was queued.

The bytes are not hashed again here: the server verifies every file's SHA-256 before it
stores it, and a second hash on the agent cost ~0.6 CPU-seconds per GB of a sync that is
CPU-bound on both ends. A rewrite that keeps size and mtime is caught by that server check;
the uploader then hashes the file again and queues what it holds now."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from photonic.media.chunks import AdaptiveCompressor


class FileChanged(Exception):
    """The file differs from what was queued (rewritten, truncated, vanished)."""


class FileSource:
    """Blocking; each method is called in a worker thread (file reads and lz4 release the
    GIL)."""

    def __init__(self, path: Path, *, size: int, mtime_ns: int, offset: int,
                 chunk_bytes: int, compressor: AdaptiveCompressor) -> None:
        self._path = path
        self._size = size
        self._mtime_ns = mtime_ns
        self.offset = offset
        self._chunk_bytes = chunk_bytes
        self._compressor = compressor
        self._file: BinaryIO | None = None

    def open(self) -> None:
        try:
            self._file = open(self._path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError as exc:
            raise FileChanged(f"{self._path} vanished before upload") from exc
        self._check_unchanged("changed since it was queued")
        self._file.seek(self.offset)  # the server resumes mid-file

    def next_chunk(self) -> tuple[int, bytes, bool, int] | None:
        """(offset, wire data, lz4?, raw size) of the next chunk, or None at the end."""
        assert self._file is not None
        if self.offset >= self._size:
            return None
        raw = self._file.read(min(self._chunk_bytes, self._size - self.offset))
        if not raw:
            raise FileChanged(f"{self._path} shrank during upload")
        start = self.offset
        self.offset += len(raw)
        if self.offset >= self._size:
            self._check_unchanged("was rewritten during upload")
        data, lz4 = self._compressor.encode(raw)
        return start, data, lz4, len(raw)

    def _check_unchanged(self, what: str) -> None:
        assert self._file is not None
        st = os.fstat(self._file.fileno())
        if st.st_size != self._size or st.st_mtime_ns != self._mtime_ns:
            raise FileChanged(f"{self._path} {what}")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
