"""Small, deterministic regression tests for bugs the chaos suite found."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path, PurePosixPath

import pytest
from prometheus_client import CollectorRegistry

from photonic.errors import StorageFull
from photonic.models import ConflictPolicy, ContentHash, ManifestEntry
from photonic.server.catalog import SqliteCatalog
from photonic.server.events import LocalEventHub
from photonic.server.ingest import IngestSession
from photonic.server.ingest_deps import IngestDeps, IngestLimits
from photonic.server.library import Library
from photonic.server.metrics import ServerMetrics
from photonic.server.shared.claims import LocalUploadClaims
from photonic.server.store import ContentStore
from tests.chaos.scenario import final_verification, write_photos
from tests.support.daemons import ServerHandle, make_agent
from tests.support.pki import TestPki

pytestmark = pytest.mark.chaos


def _store_object(store: ContentStore, data: bytes) -> ContentHash:
    sha = ContentHash(hashlib.sha256(data).hexdigest())
    upload = store.open_partial(sha, len(data))
    upload.append(data)
    store.commit(upload)
    return sha


def test_relinking_a_library_file_to_the_same_content_leaves_no_temporary(
        tmp_path: Path) -> None:
    """Linking a library path that already holds the content (a retry after a crash) leaves
    no `.photonic-tmp-*` file: rename() between links of one inode does nothing."""
    store = ContentStore(tmp_path / "storage")
    sha = _store_object(store, b"photo bytes")
    target = store.library_file("laptop", "photos", PurePosixPath("a/IMG_1.jpg"))
    store.link(sha, target)
    store.link(sha, target)
    assert sorted(p.name for p in Path(target).parent.iterdir()) == ["IMG_1.jpg"]
    assert store.holds(target, sha)


def test_ingest_mode_uploads_the_buffered_copies(tmp_path: Path, pki: TestPki,
                                                  server: ServerHandle) -> None:
    """Photos from an ingest-mode card reach the server (regression: the buffered copy had a
    new mtime, so the uploader judged every copy "changed since queued" and sent nothing)."""
    root = tmp_path / "laptop"
    card = root / "card"
    agent = make_agent(root, pki, "laptop", server, {"card": card}, extra={"agent": {
        "watch": [{"path": str(card), "name": "card", "mode": "ingest"}]}})
    write_photos(card, range(6))
    summary = agent.once()
    assert summary["files_uploaded"] == 6
    assert summary["files_changed"] == 0
    report = final_verification(server, [agent])
    assert report.photos_verified == 6


def _ingest_deps(tmp_path: Path, min_free_bytes: int) -> IngestDeps:
    store = ContentStore(tmp_path / "storage")
    catalog = SqliteCatalog(tmp_path / "storage" / "catalog.db")

    async def audit(*_: str) -> None:
        return None

    return IngestDeps(store=store, catalog=catalog, library=Library(store, catalog),
                      claims=LocalUploadClaims(), metrics=ServerMetrics(CollectorRegistry()),
                      events=LocalEventHub(), limits=IngestLimits(10**12, min_free_bytes, True),
                      audit=audit)


def test_storage_full_at_upload_start_releases_the_content_claim(tmp_path: Path) -> None:
    """An upload refused for lack of space releases its claim on the content (regression: the
    claim leaked, so every later stream offering that photo waited forever, and the agent
    hung in SYNCING even after space was freed)."""
    deps = _ingest_deps(tmp_path, min_free_bytes=2**62)
    sent: list[object] = []

    async def send(item: object) -> None:
        sent.append(item)

    async def scenario() -> None:
        session = IngestSession("laptop", deps, send)
        entry = ManifestEntry(sha256=ContentHash("ab" * 32), size=10, watch_name="photos",
                              relative_path="IMG_1.jpg")
        with pytest.raises(StorageFull):
            await session.on_manifest([entry], ConflictPolicy.AUTO)
        await session.close()
        assert await deps.claims.try_claim("ab" * 32), "the claim was released"

    asyncio.run(scenario())
    deps.catalog.close()


def test_catalog_on_a_full_disk_raises_storage_full_and_recovers(tmp_path: Path) -> None:
    """SQLite's "database or disk is full" becomes StorageFull, and the failed transaction is
    closed, so the catalog works again once space returns (regression: an unexpected
    OperationalError reached the RPC layer as an internal error)."""
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    with catalog._lock:
        page_count = catalog._conn.execute("PRAGMA page_count").fetchone()[0]
        catalog._conn.execute(f"PRAGMA max_page_count = {page_count}")
    with pytest.raises(StorageFull):
        for i in range(200):
            catalog.audit("laptop", "test", "x" * 4000, "ok", str(i))
    with catalog._lock:
        catalog._conn.execute("PRAGMA max_page_count = 1073741823")
    catalog.audit("laptop", "after", "", "ok")
    assert catalog.audit_rows(1)[0][2] == "after"
    catalog.close()
