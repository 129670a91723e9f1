"""What a server answers another server about the objects it holds (PhotonicArchive): their
bytes, LZ4-compressed where that pays, and pages of them with their library paths. The
servicer (archive_rpc.py) authorizes and translates; this holds the rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from photonic import errors
from photonic.media.chunks import AdaptiveCompressor
from photonic.models import is_content_hash
from photonic.server.object_reader import read_object
from photonic.server.scrub_tables import HeldObject, ScrubTables
from photonic.server.store import ContentStore

MAX_PREFIX_CHARS = 4096


@dataclass(frozen=True)
class OutgoingChunk:
    offset: int
    data: bytes
    lz4: bool
    raw_size: int
    total_size: int


class ArchiveReader:
    def __init__(self, store: ContentStore, tables: ScrubTables) -> None:
        self._store = store
        self._tables = tables

    async def fetch(self, sha256: str, offset: int) -> AsyncIterator[OutgoingChunk]:
        """The object's bytes from offset on; LZ4 is tried on the first chunk and kept only
        where it saves (a JPEG or RAW does not shrink)."""
        if not is_content_hash(sha256):
            raise errors.InvalidInput("sha256 must be 64 lowercase hex digits")
        compressor = AdaptiveCompressor()
        async for at, raw, total in read_object(self._store, sha256, offset):
            data, lz4 = (await asyncio.to_thread(compressor.encode, raw)
                         if compressor.trying else compressor.encode(raw))
            yield OutgoingChunk(at, data, lz4, len(raw), total)

    async def list_objects(self, after_sha256: str, limit: int, library_prefix: str
                           ) -> list[HeldObject]:
        """A page of the contents this server holds in objects/ (quarantined ones are not:
        they are never served), in SHA-256 order after after_sha256."""
        if after_sha256 and not is_content_hash(after_sha256):
            raise errors.InvalidInput("after_sha256 must be empty or 64 lowercase hex digits")
        prefix = _checked_prefix(library_prefix)
        while True:
            page = await asyncio.to_thread(self._tables.held_page, after_sha256, limit, prefix)
            if not page:
                return []
            held = await asyncio.to_thread(self._held, page)
            if held:
                return held
            after_sha256 = page[-1].sha256  # none of this page is held: read on


    def _held(self, page: list[HeldObject]) -> list[HeldObject]:
        return [o for o in page if self._store.has_object(o.sha256)]


def _checked_prefix(prefix: str) -> str:
    """A library folder as the wire names it (`agent/watch/path`): relative, no `..`, no NUL."""
    if len(prefix) > MAX_PREFIX_CHARS or "\x00" in prefix or prefix.startswith("/"):
        raise errors.InvalidInput("library_prefix must be a folder relative to the library")
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise errors.InvalidInput("library_prefix may not contain '.' or '..'")
    return "/".join(parts)
