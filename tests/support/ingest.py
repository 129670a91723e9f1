"""The server's real ingest dependencies (store, catalog, library, metrics) on one storage
root, for tests that drive IngestSession directly instead of through gRPC."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from photonic.server.catalog import SqliteCatalog
from photonic.server.events import EventHub
from photonic.server.fs_sync import FilesystemSync
from photonic.server.ingest import IngestDeps, IngestLimits, UploadClaims
from photonic.server.library import Library
from photonic.server.metrics import ServerMetrics
from photonic.server.store import ContentStore


def real_ingest_deps(root: Path, filesystem: FilesystemSync | None = None) -> IngestDeps:
    """Everything real, no storage reserve; the caller closes deps.catalog (and filesystem).
    filesystem: group syncs are one syncfs of root's filesystem, as the server does by
    default on ext4, XFS and btrfs; None fsyncs file by file."""
    store = ContentStore(root)
    catalog = SqliteCatalog(root / "catalog.db")

    async def audit(*_: str) -> None:
        return None

    return IngestDeps(store, catalog, Library(store, catalog, filesystem), UploadClaims(),
                      ServerMetrics(CollectorRegistry()), EventHub(),
                      IngestLimits(10**12, 0, True), audit)
