"""Appends received photo bytes to a file with O_DIRECT where the filesystem allows it.

Every byte the server receives is written once, fsynced before it is acknowledged, and not
read again soon. Through the page cache each byte is first copied into a freshly allocated
cache page, and allocating those pages was the server's largest single cost on the bench
machine (28% of its samples in a 1.2 GB sync). With O_DIRECT the disk reads from one reused,
aligned buffer instead, and the photos being stored do not push the catalog and the agents'
working files out of the cache.

O_DIRECT writes must start at aligned file offsets and cover whole aligned blocks, so the
bytes past the last whole block wait in memory until more arrive or the file is flushed;
then they are written through the page cache. Where O_DIRECT is missing (macOS) or refused
(some network and FUSE filesystems), every write goes through the page cache. Durability is
the same either way: the caller fsyncs before anything is acknowledged.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import threading
from pathlib import Path

from photonic.media.hashing import fsync_fd

ALIGN_BYTES = 4096
"""Covers the logical block sizes of the disks photonic runs on (512 and 4096 bytes)."""

_BUFFER_STEP_BYTES = 1 << 20
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)


class _AlignedBuffers:
    """Page-aligned buffers shared by the worker threads, each reused for write after write.

    Shared, not one per thread: the server has 32 I/O threads, and a 4 MiB buffer each would
    be 128 MiB, while only the writes in progress need one."""

    KEEP = 8

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[mmap.mmap] = []

    def take(self, size: int) -> mmap.mmap:
        with self._lock:
            for i, buffer in enumerate(self._free):
                if len(buffer) >= size:
                    return self._free.pop(i)
        rounded = -(-size // _BUFFER_STEP_BYTES) * _BUFFER_STEP_BYTES
        return mmap.mmap(-1, rounded)  # anonymous maps are page-aligned

    def give_back(self, buffer: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < self.KEEP:
                self._free.append(buffer)
                return
        buffer.close()


_buffers = _AlignedBuffers()


def _set_direct(fd: int, on: bool) -> bool:
    """Turns O_DIRECT on or off for fd; False where the platform or filesystem refuses it."""
    if not _O_DIRECT:
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | _O_DIRECT) if on else (flags & ~_O_DIRECT))
    except OSError:
        return False
    return True


class DirectAppender:
    """Appends to one file from the position `start` on; blocking, used from worker threads.

    The bytes before `start` are kept: a resumed upload continues where its partial file ends.

    Thread-safe: a stream that ends (the agent went away) closes its uploads from the event
    loop while a worker may still be appending a chunk. Without the lock, the descriptor
    could be closed mid-write and its number reused by another file, which would then
    receive this file's bytes."""

    def __init__(self, path: str | Path, start: int, *, direct: bool = True,
                 truncate: bool = False, fd: int | None = None) -> None:
        """truncate: the file starts empty (start must then be 0).

        fd: a descriptor on path that the caller opened read-write (it has read the bytes
        before `start` through it); the appender owns it from now on. Reading and appending
        through one descriptor means both see one file, even if path is renamed meanwhile."""
        if truncate and start:
            raise ValueError("a truncated file starts at 0")
        if fd is None:
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(path, flags | (os.O_TRUNC if truncate else 0), 0o600)
        elif truncate:
            os.ftruncate(fd, 0)
        self._fd = fd
        self._lock = threading.Lock()
        self._written = start
        """Where the pending bytes will go: everything before it is in the file."""
        self._pending = b""
        try:
            if direct and start % ALIGN_BYTES:
                # The partial block already in the file is written again with the next
                # block, so that every O_DIRECT write starts aligned.
                aligned = start - start % ALIGN_BYTES
                self._pending = os.pread(self._fd, start - aligned, aligned)
                self._written = aligned
            self._direct = direct and _set_direct(self._fd, True)
            if not self._direct:
                self._written, self._pending = start, b""
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def direct(self) -> bool:
        """Whether whole blocks still bypass the page cache."""
        return self._direct

    @property
    def end(self) -> int:
        """The file's length once everything appended so far is written."""
        return self._written + len(self._pending)

    def append(self, data: bytes | memoryview) -> None:
        """Writes data after everything before it. On failure, the file is cut back to what
        it held before, and `end` is unchanged, so the caller may report a truthful offset."""
        with self._lock:
            self._refuse_if_closed()
            self._append(data)

    def _refuse_if_closed(self) -> None:
        if self._fd < 0:
            raise OSError(errno.EBADF, "the upload was closed (its stream ended)")

    def _append(self, data: bytes | memoryview) -> None:
        if not self._direct:
            self._write_at(memoryview(data), self._written)
            self._written += len(data)
            return
        total = len(self._pending) + len(data)
        whole = total - total % ALIGN_BYTES
        if not whole:
            self._pending += bytes(data)
            return
        buffer = _buffers.take(whole)
        block = memoryview(buffer)[:whole]
        taken = whole - len(self._pending)
        try:
            block[:len(self._pending)] = self._pending
            block[len(self._pending):] = memoryview(data)[:taken]
            try:
                self._write_at(block, self._written)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # The filesystem took the flag but refuses these writes: use the page cache.
                self._direct = False
                _set_direct(self._fd, False)
                self._write_at(block, self._written)
        finally:
            block.release()
            _buffers.give_back(buffer)
        self._written += whole
        self._pending = bytes(memoryview(data)[taken:])

    def flush(self) -> None:
        """Writes the bytes that wait for a whole block, through the page cache."""
        with self._lock:
            self._refuse_if_closed()
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        if self._direct:
            self._direct = not _set_direct(self._fd, False)
            if self._direct:  # never seen on Linux, where F_SETFL turns it off as it turned it on
                raise OSError(errno.EINVAL, "cannot turn off O_DIRECT to write the last bytes")
        self._write_at(memoryview(self._pending), self._written)
        self._written += len(self._pending)
        self._pending = b""

    def fsync(self) -> None:
        with self._lock:
            self._refuse_if_closed()
            self._flush()
            fsync_fd(self._fd)

    def close(self) -> None:
        """Flushes what it can (a resumed upload then continues from there) and closes; waits
        for a write in progress in another thread."""
        with self._lock:
            if self._fd < 0:
                return
            try:
                with contextlib.suppress(OSError):  # a disk full now only shortens the partial
                    self._flush()
            finally:
                os.close(self._fd)
                self._fd = -1

    def _write_at(self, view: memoryview, offset: int) -> None:
        done = 0
        try:
            while done < len(view):
                written = os.pwrite(self._fd, view[done:], offset + done)
                if written <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += written
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, offset)
            raise
