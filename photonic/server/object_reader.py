"""Reads a stored object from an offset in chunks, off the event loop: what FetchBlob (a job's
input) and FetchObject (a replica's repair and restore) both send."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from photonic import errors
from photonic.models import is_content_hash
from photonic.server.store import ContentStore

OBJECT_CHUNK_BYTES = 1 << 20


async def read_object(store: ContentStore, sha256: str, offset: int,
                      chunk_bytes: int = OBJECT_CHUNK_BYTES
                      ) -> AsyncIterator[tuple[int, bytes, int]]:
    """(offset, data, total size) chunks of a stored object from offset on. NotFound when
    objects/ holds no such object (a quarantined one is not there: damaged bytes are never
    served)."""
    if not is_content_hash(sha256) or not store.has_object(sha256):
        raise errors.NotFound(f"the server holds no object {sha256[:12]}")
    fd = await asyncio.to_thread(os.open, store.object_file(sha256), os.O_RDONLY)
    try:
        total = os.fstat(fd).st_size
        if offset > total:
            raise errors.InvalidInput(f"offset {offset} is past the end ({total} bytes)")
        while offset < total:
            data = await asyncio.to_thread(os.pread, fd, chunk_bytes, offset)
            if not data:
                raise errors.IntegrityError("the stored object ended early")
            yield offset, data, total
            offset += len(data)
    finally:
        os.close(fd)
