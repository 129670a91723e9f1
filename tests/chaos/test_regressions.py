"""Small, deterministic regression tests for bugs the chaos suite found."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

import pytest

from photonic.models import ContentHash
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
    assert sorted(p.name for p in target.parent.iterdir()) == ["IMG_1.jpg"]
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
