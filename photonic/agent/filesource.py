"""Reads a queued file for upload in chunks, and refuses to hand out the last chunk if the
file's size or mtime moved since it was queued.

The bytes are not hashed again here: the server verifies every file's SHA-256 before it
stores it, and a second hash on the agent cost ~0.6 CPU-seconds per GB of a sync that is
CPU-bound on both ends. A rewrite that keeps size and mtime is caught by that server check;
the uploader then hashes the file again and queues what it holds now.

The file is opened beneath its root (its watch folder, or the ingest buffer for an ingest copy)
through no symlink, as the hasher opened it (beneath.py): a folder swapped for a symlink since
the file was hashed makes the upload fail, never read a file outside the watch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from photonic.agent.beneath import Replaced, is_inside, open_beneath
from photonic.media.chunks import AdaptiveCompressor
from photonic.media.possession import pread_exactly


class FileChanged(Exception):
    """The file differs from what was queued (rewritten, truncated, vanished)."""


def source_root(source_path: Path, rel_path: str, ingest_dir: Path) -> Path | None:
    """The folder a queued file must be read beneath: the ingest buffer for an ingest copy,
    else its watch folder, which the scanner's source path is by construction (the watch's
    resolved root joined with rel_path). None when it is neither: FileSource refuses it."""
    ingest = os.path.abspath(ingest_dir)
    if is_inside(str(source_path), ingest):
        return Path(ingest)
    text = str(source_path)
    if text.endswith("/" + rel_path):
        return Path(text[: -len(rel_path) - 1] or "/")
    return None


class FileSource:
    """Blocking; each method is called in a worker thread (file reads and lz4 release the
    GIL). root is the folder path must be read beneath (source_root); None refuses it."""

    def __init__(self, path: Path, *, root: Path | None, size: int, mtime_ns: int, offset: int,
                 chunk_bytes: int, compressor: AdaptiveCompressor) -> None:
        self._path = path
        self._root = root
        self._size = size
        self._mtime_ns = mtime_ns
        self.offset = offset
        self._chunk_bytes = chunk_bytes
        self._compressor = compressor
        self._file: BinaryIO | None = None

    def open(self) -> None:
        if self._root is None:
            raise FileChanged(f"{self._path} is in no watch folder nor the ingest buffer")
        root = str(self._root)
        rel = os.path.relpath(self._path, root).replace(os.sep, "/")
        if rel.startswith("../") or not is_inside(str(self._path), root):
            raise FileChanged(f"{self._path} is not inside {root}")
        try:
            # A symlink to a file inside the watch was hashed through its target: so here.
            fd, _ = open_beneath(root, rel, follow_symlink=True)
        except FileNotFoundError as exc:
            raise FileChanged(f"{self._path} vanished before upload") from exc
        except Replaced as exc:
            raise FileChanged(f"{self._path} {exc}") from exc
        self._file = open(fd, "rb")  # noqa: SIM115 - closed by close()
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

    def read_at(self, offset: int, length: int) -> bytes:
        """Exactly length bytes at offset (the upload position is left alone); fewer only at
        the end of the file."""
        assert self._file is not None
        return pread_exactly(self._file.fileno(), offset, length)

    def _check_unchanged(self, what: str) -> None:
        assert self._file is not None
        st = os.fstat(self._file.fileno())
        if st.st_size != self._size or st.st_mtime_ns != self._mtime_ns:
            raise FileChanged(f"{self._path} {what}")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
