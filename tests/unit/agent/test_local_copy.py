"""AgentStateDB.local_copy_of: where this machine still holds a content the server
acknowledged, so a job can read it locally (the caller re-hashes before trusting it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from photonic.agent.signature import FileSignature
from photonic.agent.statedb import AgentStateDB
from photonic.models import ContentHash, ExifSummary

SHA_A = ContentHash("a" * 64)
SHA_B = ContentHash("b" * 64)
SIG = FileSignature(size=10, mtime_ns=5, inode=7, ctime_ns=9, birth_ns=0)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[AgentStateDB]:
    state = AgentStateDB(tmp_path / "agent.db")
    yield state
    state.close()


def _synced(db: AgentStateDB, watch: str, root: Path, rel: str, sha: ContentHash,
            *, source: Path | None = None) -> None:
    """Records root/rel as hashed to sha and acknowledges it, as a COMMITTED reply would."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 10)
    db.record_file(watch, rel, signature=SIG, sha256=sha, exif=ExifSummary(),
                   source_path=source or path)
    [item] = [p for p in db.pending(100) if p.relative_path == rel and p.watch_name == watch]
    db.mark_synced(item.id, sha)


def test_synced_files_that_still_exist_are_found_under_their_configured_root(
        db: AgentStateDB, tmp_path: Path) -> None:
    """Every present synced file with the content is returned as root/rel (roots come from
    the config), in a stable order; one deleted since is not, nor another content."""
    cam, phone = tmp_path / "cam", tmp_path / "phone"
    _synced(db, "cam", cam, "a/1.jpg", SHA_A)
    _synced(db, "phone", phone, "x.jpg", SHA_A)
    _synced(db, "cam", cam, "gone.jpg", SHA_A)
    _synced(db, "cam", cam, "other.jpg", SHA_B)
    (cam / "gone.jpg").unlink()
    found = db.local_copy_of(SHA_A, {"cam": cam, "phone": phone})
    assert found == [cam / "a" / "1.jpg", phone / "x.jpg"]


def test_a_watch_missing_from_roots_is_skipped(db: AgentStateDB, tmp_path: Path) -> None:
    """A watch no longer configured has no root to read beneath: nothing is guessed."""
    _synced(db, "cam", tmp_path / "cam", "1.jpg", SHA_A)
    assert db.local_copy_of(SHA_A, {}) == []


def test_queued_or_changed_content_is_not_an_acknowledged_copy(
        db: AgentStateDB, tmp_path: Path) -> None:
    """Content only queued (not yet acknowledged) at its own path does not count, nor a file
    whose last hash found new content after the acknowledgement, nor one marked missing."""
    cam = tmp_path / "cam"
    (cam).mkdir()
    (cam / "queued.jpg").write_bytes(b"q")
    db.record_file("cam", "queued.jpg", signature=SIG, sha256=SHA_A, exif=ExifSummary(),
                   source_path=cam / "queued.jpg")
    _synced(db, "cam", cam, "edited.jpg", SHA_A)
    db.record_file("cam", "edited.jpg", signature=SIG._replace(size=11), sha256=SHA_B,
                   exif=ExifSummary(), source_path=cam / "edited.jpg")
    _synced(db, "cam", cam, "moved.jpg", SHA_A)
    db.mark_missing("cam", ["moved.jpg"])
    assert db.local_copy_of(SHA_A, {"cam": cam}) == []


def test_an_ingest_copy_in_the_buffer_is_found_too(db: AgentStateDB, tmp_path: Path) -> None:
    """An ingest watch's original may be gone from the card; the copy the agent made in its
    buffer (still queued under another path) holds the same content and is returned."""
    card, buffer_copy = tmp_path / "card", tmp_path / "buffer" / "ingest" / "aa" / "1.jpg"
    _synced(db, "card", card, "1.jpg", SHA_A)
    (card / "1.jpg").unlink()
    buffer_copy.parent.mkdir(parents=True)
    buffer_copy.write_bytes(b"x" * 10)
    db.record_file("card", "2.jpg", signature=SIG, sha256=SHA_A, exif=ExifSummary(),
                   source_path=buffer_copy)
    assert db.local_copy_of(SHA_A, {"card": card}) == [buffer_copy]


def test_a_relative_path_that_climbs_out_of_its_root_is_refused(
        db: AgentStateDB, tmp_path: Path) -> None:
    """A row naming ../ (never written by the scanner, but the database is a file on disk)
    cannot make the lookup hand out a path outside the watch folder."""
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"x" * 10)
    root = tmp_path / "cam"
    root.mkdir()
    db.record_file("cam", "../secret.jpg", signature=SIG, sha256=SHA_A, exif=ExifSummary(),
                   source_path=root / ".." / "secret.jpg")
    [item] = db.pending(10)
    db.mark_synced(item.id, SHA_A)
    assert db.local_copy_of(SHA_A, {"cam": root}) == []
