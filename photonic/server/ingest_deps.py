"""What an ingest session works with and within: the server's shared collaborators (store,
catalog, library, upload claims, metrics, events, audit) and the limits every stream obeys."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from photonic import errors
from photonic.models import ManifestEntry
from photonic.server.catalog import Catalog
from photonic.server.events import EventHub
from photonic.server.library import Library
from photonic.server.metrics import ServerMetrics
from photonic.server.store import ContentStore
from photonic.server.verification import ObjectVerifier

MAX_MANIFEST_ENTRIES = 10_000


def check_manifest_size(count: int) -> None:
    """Refuses an oversized manifest; callers check before converting a million entries."""
    if count > MAX_MANIFEST_ENTRIES:
        raise errors.InvalidInput(
            f"a manifest may list at most {MAX_MANIFEST_ENTRIES} files; split the batch")


class UploadClaims:
    """Which stream is writing each content now, so two agents never append to one partial."""

    def __init__(self) -> None:
        self._released: dict[str, asyncio.Event] = {}

    def held(self, sha256: str) -> bool:
        return sha256 in self._released

    def try_claim(self, sha256: str) -> bool:
        if sha256 in self._released:
            return False
        self._released[sha256] = asyncio.Event()
        return True

    def release(self, sha256: str) -> None:
        done = self._released.pop(sha256, None)
        if done is not None:
            done.set()

    async def wait_released(self, sha256: str) -> None:
        done = self._released.get(sha256)
        if done is not None:
            await done.wait()


@dataclass(frozen=True)
class IngestLimits:
    max_transfer_size_bytes: int
    min_free_bytes: int
    deduplication: bool


@dataclass
class IngestDeps:
    store: ContentStore
    catalog: Catalog
    library: Library
    claims: UploadClaims
    metrics: ServerMetrics
    events: EventHub
    limits: IngestLimits
    audit: Callable[[str, str, str, str, str], Awaitable[None]]
    verifier: ObjectVerifier = field(init=False)

    def __post_init__(self) -> None:
        self.verifier = ObjectVerifier(self.store, self.catalog)


Placed = list[tuple[ManifestEntry, PurePosixPath]]
"""Manifest entries with their validated library-relative paths."""
