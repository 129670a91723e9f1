"""What an ingest session works with and within: the server's shared collaborators (store,
catalog, library, upload claims, metrics, events, audit) and the limits every stream obeys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from photonic import errors
from photonic.models import ManifestEntry
from photonic.server.catalog import Catalog
from photonic.server.events import EventHub
from photonic.server.library import Library
from photonic.server.metrics import ServerMetrics
from photonic.server.shared.claims import UploadClaims
from photonic.server.storage.blobs import BlobStore
from photonic.server.storage.local import LocalBlobStore
from photonic.server.store import ContentStore
from photonic.server.verification import ObjectVerifier

MAX_MANIFEST_ENTRIES = 10_000


def check_manifest_size(count: int) -> None:
    """Refuses an oversized manifest; callers check before converting a million entries."""
    if count > MAX_MANIFEST_ENTRIES:
        raise errors.InvalidInput(
            f"a manifest may list at most {MAX_MANIFEST_ENTRIES} files; split the batch")


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
    blob_store: BlobStore | None = None
    """Where content is stored (storage.objects); None: the local objects/ of `store`."""
    blobs: BlobStore = field(init=False)
    verifier: ObjectVerifier = field(init=False)

    def __post_init__(self) -> None:
        self.blobs = self.blob_store if self.blob_store is not None else LocalBlobStore(
            self.store)
        self.verifier = ObjectVerifier(self.blobs, self.catalog)


Placed = list[tuple[ManifestEntry, PurePosixPath]]
"""Manifest entries with their validated library-relative paths."""
