"""The server's real ingest dependencies (store, catalog, library, metrics) on one storage
root, for tests that drive IngestSession directly instead of through gRPC."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from photonic.server.catalog import SqliteCatalog
from photonic.server.events import EventHub
from photonic.server.ingest import IngestDeps, IngestLimits, UploadClaims
from photonic.server.library import Library
from photonic.server.metrics import ServerMetrics
from photonic.server.store import ContentStore


def real_ingest_deps(root: Path) -> IngestDeps:
    """Everything real, no storage reserve; the caller closes deps.catalog."""
    store = ContentStore(root)
    catalog = SqliteCatalog(root / "catalog.db")

    async def audit(*_: str) -> None:
        return None

    return IngestDeps(store, catalog, Library(store, catalog), UploadClaims(),
                      ServerMetrics(CollectorRegistry()), EventHub(),
                      IngestLimits(10**12, 0, True), audit)
