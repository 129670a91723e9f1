"""Reads a stored object from an offset in chunks, off the event loop: what FetchBlob (a job's
input) and FetchObject (a replica's repair and restore) both send, from whichever BlobStore
holds the bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from photonic import errors
from photonic.models import is_content_hash
from photonic.server.storage.blobs import BlobStore
from photonic.server.storage.local import LocalBlobStore
from photonic.server.store import ContentStore

OBJECT_CHUNK_BYTES = 1 << 20


async def read_object(store: BlobStore | ContentStore, sha256: str, offset: int,
                      chunk_bytes: int = OBJECT_CHUNK_BYTES
                      ) -> AsyncIterator[tuple[int, bytes, int]]:
    """(offset, data, total size) chunks of a stored object from offset on. NotFound when
    the store holds no such object (a quarantined one is not there: damaged bytes are never
    served). A ContentStore is read through its LocalBlobStore."""
    blobs = LocalBlobStore(store) if isinstance(store, ContentStore) else store
    if not is_content_hash(sha256):
        raise errors.NotFound(f"the server holds no object {sha256[:12]}")
    reader = await asyncio.to_thread(blobs.open, sha256)
    try:
        total = reader.size
        if offset > total:
            raise errors.InvalidInput(f"offset {offset} is past the end ({total} bytes)")
        while offset < total:
            data = await asyncio.to_thread(reader.read_at, offset, chunk_bytes)
            if not data:
                raise errors.IntegrityError("the stored object ended early")
            yield offset, data, total
            offset += len(data)
    finally:
        reader.close()
