"""A stored content's bytes for a download: opened once (objects are read-only after
commit, so what was opened is what is sent), read in chunks from a worker thread."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator

from photonic import errors

CHUNK_BYTES = 1 << 20


class Download:
    """One open object; chunks() reads it to the end and closes it, close() ends it early."""

    def __init__(self, fd: int, name: str, size: int) -> None:
        self._fd = fd
        self.name = name
        self.size = size

    @classmethod
    def open(cls, object_file: str, name: str) -> Download:
        """Blocking: call it from a thread."""
        try:
            fd = os.open(object_file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise errors.NotFound("that content is not in the store (quarantined until an "
                                  "agent sends it again)") from None
        return cls(fd, name, os.fstat(fd).st_size)

    async def chunks(self, start: int = 0, end: int | None = None
                     ) -> AsyncGenerator[bytes, None]:
        """The bytes from start up to end (exclusive; None: the end of the object), one
        CHUNK_BYTES read at a time: a Range request reads only its part."""
        offset, stop = start, self.size if end is None else min(end, self.size)
        try:
            while offset < stop:
                data = await asyncio.to_thread(os.pread, self._fd,
                                               min(CHUNK_BYTES, stop - offset), offset)
                if not data:
                    raise errors.IntegrityError("the stored object ended early")
                offset += len(data)
                yield data
        finally:
            self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
