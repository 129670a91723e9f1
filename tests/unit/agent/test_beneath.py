"""The agent reads files only beneath their watch folder, through descriptors (beneath.py):
symlinks to files inside are followed, symlinks out are skipped, and a folder or file swapped
between listing and reading is refused by its identity, never read."""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from photonic.agent.beneath import REPLACED, Replaced, open_beneath
from photonic.agent.filesource import FileChanged, FileSource, source_root
from photonic.agent.hasher import CandidateHasher
from photonic.agent.ignore import IgnoreRules
from photonic.agent.listing import OUTSIDE_WATCH, Candidate, DirectoryLister, candidate_of
from photonic.agent.scanner import Scanner
from photonic.agent.statedb import AgentStateDB, FileRecord
from photonic.media.chunks import AdaptiveCompressor
from photonic.models import WatchMode


@dataclass(frozen=True)
class Watch:
    path: Path
    name: str = "cam"
    mode: WatchMode = WatchMode.REFERENCE


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """(watch, outside): watch/album/IMG_0001.jpg inside; outside/IMG_0001.jpg private."""
    watch, outside = tmp_path / "photos", tmp_path / "outside"
    (watch / "album").mkdir(parents=True)
    outside.mkdir()
    (watch / "album" / "IMG_0001.jpg").write_bytes(b"inside")
    (outside / "IMG_0001.jpg").write_bytes(b"secret")
    return watch, outside


def _scan(tmp_path: Path, watch: Watch) -> dict[str, bytes]:
    """{rel path: bytes of the file the queue would upload} after one scan."""
    db = AgentStateDB(tmp_path / "buffer" / "agent.db")
    try:
        scanner = Scanner(db, [watch], IgnoreRules(), buffer_path=tmp_path / "buffer",
                          max_buffer_size_bytes=1 << 30)
        asyncio.run(scanner.scan_watch(watch))
        return {p.relative_path: p.source_path.read_bytes() for p in db.pending(100)}
    finally:
        db.close()


def test_symlink_to_a_file_inside_is_followed_and_one_outside_skipped(
        tmp_path: Path, tree: tuple[Path, Path]) -> None:
    """A symlink to a file inside the watch is hashed as that file; one to a file outside is
    skipped with its reason, and its bytes are never queued."""
    watch, outside = tree
    (watch / "alias.jpg").symlink_to(watch / "album" / "IMG_0001.jpg")
    (watch / "leak.jpg").symlink_to(outside / "IMG_0001.jpg")
    assert _scan(tmp_path, Watch(watch)) == {"album/IMG_0001.jpg": b"inside",
                                             "alias.jpg": b"inside"}
    root = os.path.realpath(watch)
    fd, _ = open_beneath(root, "alias.jpg", follow_symlink=True)
    try:
        assert os.read(fd, 100) == b"inside"
    finally:
        os.close(fd)
    with pytest.raises(Replaced, match=OUTSIDE_WATCH):
        open_beneath(root, "leak.jpg", follow_symlink=True)


def _listed_candidates(watch: Path, rel_dir: str) -> list[Candidate]:
    root = os.path.realpath(watch)
    listing = DirectoryLister(IgnoreRules(), "/nonexistent").list_directory(
        "cam", root, f"{root}/{rel_dir}", rel_dir)
    return [candidate_of(root, f) for f in listing.files]


def _swap_for_symlink(folder: Path, target: Path) -> None:
    os.rename(folder, folder.with_name(folder.name + ".moved"))
    folder.symlink_to(target, target_is_directory=True)


@pytest.mark.parametrize("ingest", [False, True])
def test_folder_swapped_for_a_symlink_after_listing_is_refused(
        tmp_path: Path, tree: tuple[Path, Path], ingest: bool) -> None:
    """album/ is listed, then replaced by a symlink to a folder outside holding a file of the
    same name: the hasher (in place or copying into the ingest buffer) refuses it and reads
    nothing of the outside file."""
    watch, outside = tree
    candidates = _listed_candidates(watch, "album")
    _swap_for_symlink(watch / "album", outside)
    outcomes = CandidateHasher(tmp_path / "buffer" / "ingest").hash_group(
        candidates, ingest, False)
    assert outcomes == [("album/IMG_0001.jpg", REPLACED)]
    copies = tmp_path / "buffer" / "ingest"
    assert not copies.exists() or not any(p.is_file() for p in copies.rglob("*"))


def test_file_replaced_inside_the_watch_after_listing_is_refused_by_identity(
        tmp_path: Path, tree: tuple[Path, Path]) -> None:
    """A real folder put in place of the listed one (no symlink anywhere) still leads to
    another file: its device and inode differ from the listing's, so it is refused."""
    watch, _ = tree
    candidates = _listed_candidates(watch, "album")
    shutil.move(watch / "album", tmp_path / "elsewhere")
    (watch / "album").mkdir()
    (watch / "album" / "IMG_0001.jpg").write_bytes(b"another")
    outcomes = CandidateHasher(tmp_path / "ingest").hash_group(
        candidates, False, False)
    assert outcomes == [("album/IMG_0001.jpg", REPLACED)]


def test_listing_does_not_follow_a_folder_swapped_for_a_symlink(
        tree: tuple[Path, Path]) -> None:
    """A subfolder that became a symlink by the time it is listed is not listed through."""
    watch, outside = tree
    _swap_for_symlink(watch / "album", outside)
    root = os.path.realpath(watch)
    listing = DirectoryLister(IgnoreRules(), "/nonexistent").list_directory(
        "cam", root, f"{root}/album", "album")
    assert listing.files == []
    assert listing.skipped == [("album", REPLACED)]


def test_upload_refuses_a_file_whose_folder_became_a_symlink(
        tmp_path: Path, tree: tuple[Path, Path]) -> None:
    """The uploader reads a queued file beneath its watch: once its folder is swapped for a
    symlink out of the watch, the upload fails as FileChanged instead of reading outside."""
    watch, outside = tree
    candidates = _listed_candidates(watch, "album")
    (record,) = CandidateHasher(tmp_path / "ingest").hash_group(
        candidates, False, False)
    assert isinstance(record, FileRecord)
    _swap_for_symlink(watch / "album", outside)
    os.utime(outside / "IMG_0001.jpg", ns=(record.mtime_ns, record.mtime_ns))
    (outside / "IMG_0001.jpg").write_bytes(b"secre!")  # same size too
    os.utime(outside / "IMG_0001.jpg", ns=(record.mtime_ns, record.mtime_ns))
    root = source_root(record.source_path, record.rel_path, tmp_path / "buffer" / "ingest")
    assert root == Path(os.path.realpath(watch))
    source = FileSource(record.source_path, root=root, size=record.size,
                        mtime_ns=record.mtime_ns, offset=0, chunk_bytes=1 << 20,
                        compressor=AdaptiveCompressor("never"))
    with pytest.raises(FileChanged):
        source.open()
    source.close()
