"""Puts a content back into the store from a replica: its bytes are fetched from another server
into a partial file, verified against the SHA-256 they must hash to, fsynced, and swapped into
objects/ through the store's durable commit (the same one an upload takes); then the library
entries that waited on it are linked to it again. Used by the scrub's repairs and by
`photonic restore`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from photonic import errors
from photonic.logfmt import event
from photonic.models import ContentHash
from photonic.server.archive_client import ObjectSource
from photonic.server.catalog import Catalog
from photonic.server.library import Library
from photonic.server.store import PARTIAL_SUFFIX, RESUMABLE_SUFFIX, ContentStore, PartialUpload

log = logging.getLogger("photonic.server.repair")

REPAIR_TAG = ".replica"
"""Partial files of fetched replicas are `<sha>.replica.part`: never the name an agent's
upload of the same content writes, and removed at the next start like every `.part`."""
FETCH_TIMEOUT_S = 600.0


@dataclass
class Fetched:
    """Where a content came from, or why no source gave it."""

    sha256: str
    node: str = ""  # the source that gave verified bytes; "" when none did
    problems: list[str] = field(default_factory=list)  # "node: why", one per source tried

    @property
    def ok(self) -> bool:
        return bool(self.node)


class ReplicaFetcher:
    """Fetches contents from the first source that gives verified bytes."""

    def __init__(self, store: ContentStore, sources: Sequence[ObjectSource], *,
                 timeout_s: float = FETCH_TIMEOUT_S) -> None:
        self._store = store
        self._sources = list(sources)
        self._timeout_s = timeout_s

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self._sources]

    async def fetch(self, sha256: str, size: int, only: str = "") -> Fetched:
        """Stores the content from a source (only the one named `only`, when given). A source
        that lacks it, is unreachable or sends other bytes is passed over for the next."""
        result = Fetched(sha256)
        if not self._sources:
            result.problems.append("no backup node or repair_from server is configured")
        for source in self._sources:
            if only and source.name != only:
                continue
            try:
                await asyncio.wait_for(self._fetch_from(source, sha256, size), self._timeout_s)
            except (errors.PhotonicError, TimeoutError, OSError) as exc:
                why = str(exc) or type(exc).__name__
                result.problems.append(f"{source.name}: {why}")
                event(log, "replica_fetch_failed", logging.WARNING, node=source.name,
                      sha256=sha256[:16], error=why)
                continue
            result.node = source.name
            return result
        return result

    async def _fetch_from(self, source: ObjectSource, sha256: str, size: int) -> None:
        upload = await asyncio.to_thread(self._open, sha256, size)
        try:
            async for data in source.fetch(sha256, 0):
                if upload.offset + len(data) > size:
                    raise errors.IntegrityError(f"{source.name} sent more than {size} bytes")
                await asyncio.to_thread(upload.append, data)
            await asyncio.to_thread(upload.finish, fsync=True)  # verifies size and SHA-256
            await asyncio.to_thread(self._store.store_finished, upload, sync=True)
        finally:
            if not upload.closed:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(upload.discard)

    def _open(self, sha256: str, size: int) -> PartialUpload:
        base = f"{self._store.partial}/{sha256}{REPAIR_TAG}"
        self._store.object_file(sha256)  # refuses a name that is not a SHA-256
        return PartialUpload(f"{base}{PARTIAL_SUFFIX}", f"{base}{RESUMABLE_SUFFIX}",
                             ContentHash(sha256), size, resume=False)

    async def close(self) -> None:
        for source in self._sources:
            with contextlib.suppress(Exception):
                await source.close()


class ObjectRepairer:
    """A quarantined (or missing) content fetched back and its library entries relinked."""

    def __init__(self, fetcher: ReplicaFetcher, store: ContentStore, catalog: Catalog,
                 library: Library) -> None:
        self._fetcher = fetcher
        self._store = store
        self._catalog = catalog
        self._library = library

    @property
    def source_names(self) -> list[str]:
        return self._fetcher.source_names

    async def repair(self, sha256: str, size: int) -> Fetched:
        fetched = await self._fetcher.fetch(sha256, size)
        if fetched.ok:
            await asyncio.to_thread(self._relink, sha256)
            event(log, "object_repaired", sha256=sha256[:16], node=fetched.node)
        return fetched

    def _relink(self, sha256: str) -> None:
        """Records the fetched object as verified and links every library entry of it again
        (closing its quarantine record), durable before this returns."""
        durability = self._library.durability
        mark = durability.mark()
        st = self._store.stat_object(sha256)
        if st is not None:
            self._catalog.record_verified([(sha256, st.st_size, st.st_mtime_ns)])
        self._library.repair_links(sha256)
        durability.wait_durable(since=mark)

    async def close(self) -> None:
        await self._fetcher.close()
