"""Streaming SHA-256 of photo files and the fsync/rename steps that make writes durable."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from photonic.models import ContentHash

READ_BLOCK_BYTES = 1 << 20

FirstBlockSink = Callable[[memoryview], None]
"""Shown the first block a hashing pass reads, so a caller can parse a file's header without
reading it again. The view is valid only during the call (the read buffer is reused)."""

# fsync on a directory fails with these where the platform or filesystem cannot do it; that is
# "unsupported", not an error worth stopping a write for.
_DIR_FSYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES})

FULLFSYNC_OP: int | None = getattr(fcntl, "F_FULLFSYNC", None) if sys.platform == "darwin" else None
"""macOS's fsync hands data to the drive but leaves it in the drive's volatile cache; only
fcntl(F_FULLFSYNC) asks the drive to write its cache out (SQLite's `fullfsync` does the same).
None where plain fsync already reaches stable storage (Linux)."""


def fsync_fd(fd: int, *, full_op: int | None = None) -> None:
    """Makes fd's data durable: F_FULLFSYNC on macOS, fsync elsewhere. A filesystem that
    does not implement F_FULLFSYNC (some network ones) gets the plain fsync it does have.

    full_op: the fcntl operation to use instead of FULLFSYNC_OP (tests of the macOS path)."""
    op = FULLFSYNC_OP if full_op is None else full_op
    if op is not None:
        try:
            fcntl.fcntl(fd, op)
            return
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.ENOTTY):
                raise
    os.fsync(fd)


class _BufferPool:
    """Read buffers kept between files. A first sync hashes thousands of small photos, and a
    fresh 1 MiB bytearray per file (malloc, then zeroing every byte) cost more CPU than
    reading most of them; a few threads hash at once, so a handful of buffers is enough."""

    def __init__(self, block_bytes: int, keep: int) -> None:
        self.block_bytes = block_bytes
        self._keep = keep
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self, block_bytes: int) -> bytearray:
        if block_bytes == self.block_bytes:
            with self._lock:
                if self._free:
                    return self._free.pop()
        return bytearray(block_bytes)

    def give_back(self, buffer: bytearray) -> None:
        if len(buffer) == self.block_bytes:
            with self._lock:
                if len(self._free) < self._keep:
                    self._free.append(buffer)


_READ_BUFFERS = _BufferPool(READ_BLOCK_BYTES, keep=4)


def _blocks(handle: io.RawIOBase | io.BufferedIOBase, block_bytes: int) -> Iterator[memoryview]:
    """Yield views into one reused buffer; each view is valid only until the next one."""
    if block_bytes <= 0:
        raise ValueError(f"block_bytes must be positive, got {block_bytes}")
    buffer = _READ_BUFFERS.take(block_bytes)
    try:
        with memoryview(buffer) as view:
            while True:
                count = handle.readinto(view)
                if not count:
                    return
                with view[:count] as block:
                    yield block
    finally:
        # Only once every view on it is released: a bytearray with exports cannot be resized,
        # and a caller still holding a view would see the next file's bytes.
        _READ_BUFFERS.give_back(buffer)


def sha256_file(
    path: Path,
    *,
    block_bytes: int = READ_BLOCK_BYTES,
    on_first_block: FirstBlockSink | None = None,
) -> tuple[ContentHash, int]:
    """Return (hex SHA-256, size in bytes) of a file, reading it block by block."""
    with open(path, "rb", buffering=0) as handle:  # readinto straight into the buffer
        return _sha256_handle(handle, block_bytes, on_first_block)


def sha256_fd(
    fd: int,
    *,
    block_bytes: int = READ_BLOCK_BYTES,
    on_first_block: FirstBlockSink | None = None,
) -> tuple[ContentHash, int]:
    """sha256_file of an open descriptor, read from its current offset; fd stays open. The
    agent hashes the file it opened and checked (agent/beneath.py), not whatever a path
    leads to by the time it is read."""
    with open(fd, "rb", buffering=0, closefd=False) as handle:
        return _sha256_handle(handle, block_bytes, on_first_block)


def _sha256_handle(handle: io.RawIOBase, block_bytes: int,
                   on_first_block: FirstBlockSink | None) -> tuple[ContentHash, int]:
    digest = hashlib.sha256()
    size = 0
    for block in _blocks(handle, block_bytes):
        if on_first_block is not None and not size:
            on_first_block(block)
        digest.update(block)
        size += len(block)
    return ContentHash(digest.hexdigest()), size


def copy_and_hash_fd(
    src_fd: int,
    dst_tmp: Path,
    *,
    mode: int,
    fsync: bool = True,
    on_first_block: FirstBlockSink | None = None,
) -> tuple[ContentHash, int]:
    """Copy an open descriptor's file (left open) to a new file dst_tmp while hashing, in one
    read pass; the caller renames dst_tmp. The copy gets the permission bits mode: a copy of
    a private photo stays private, whatever the umask. It is created 0600 and given its mode
    before its bytes are synced.

    One pass matters for ingest from memory cards: the card is the slowest device involved and
    may be removed at any moment, so it is read exactly once."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    dst_fd = os.open(dst_tmp, flags, 0o600)
    with open(src_fd, "rb", closefd=False) as source, open(dst_fd, "wb") as target:
        os.fchmod(dst_fd, mode)
        return _copy_handles(source, target, fsync, on_first_block)


def _copy_handles(source: io.BufferedReader, target: io.BufferedWriter, fsync: bool,
                  on_first_block: FirstBlockSink | None) -> tuple[ContentHash, int]:
    digest = hashlib.sha256()
    size = 0
    for block in _blocks(source, READ_BLOCK_BYTES):
        if on_first_block is not None and not size:
            on_first_block(block)
        digest.update(block)
        target.write(block)
        size += len(block)
    target.flush()
    if fsync:
        fsync_fd(target.fileno())
    return ContentHash(digest.hexdigest()), size


class StreamingVerifier:
    """Incremental SHA-256 and byte count of content arriving in pieces."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._size = 0

    @classmethod
    def resume_from_fd(cls, fd: int) -> StreamingVerifier:
        """Start from the bytes fd's file holds, read through fd itself (pread: its offset is
        left alone), so what is hashed is exactly the file that will be appended to. Raises
        OSError if fewer bytes could be read than the file's size says it holds."""
        verifier = cls()
        expected = os.fstat(fd).st_size
        buffer = _READ_BUFFERS.take(READ_BLOCK_BYTES)
        try:
            with memoryview(buffer) as view:
                while verifier.size < expected:
                    count = os.preadv(fd, [view], verifier.size)
                    if not count:
                        break
                    with view[:count] as block:
                        verifier.update(block)
        finally:
            _READ_BUFFERS.give_back(buffer)
        if verifier.size != expected:
            raise OSError(errno.EIO, f"read {verifier.size} of the {expected} bytes the "
                                     "partial file holds")
        return verifier

    @property
    def size(self) -> int:
        """Bytes seen so far."""
        return self._size

    def update(self, data: bytes | memoryview) -> None:
        self._digest.update(data)
        self._size += len(data)

    def hexdigest(self) -> str:
        # hashlib's hexdigest does not finalise the object, so more updates may follow.
        return self._digest.hexdigest()


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Make a rename or create inside path durable; a no-op where directories cannot be fsynced."""
    if os.name == "nt":
        return
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    fd = os.open(path, flags)
    try:
        fsync_fd(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def durable_replace(src: Path, dst: Path) -> None:
    """Atomically move src over dst and fsync the directories so the rename survives a crash."""
    os.replace(src, dst)
    fsync_directory(dst.parent)
    if src.parent.resolve() != dst.parent.resolve():
        fsync_directory(src.parent)
