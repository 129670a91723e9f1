"""Tests that a photo rewritten in place with its size and mtime kept (exiftool -P, cp -p over
an existing file, rsync -t --inplace) is hashed and queued again: the index signature carries
the ctime, which such a rewrite always moves."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.resources
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from photonic.agent.hasher import CandidateHasher
from photonic.agent.ignore import IgnoreRules
from photonic.agent.listing import ListedFile, candidate_of
from photonic.agent.scanner import Scanner, ScanReport
from photonic.agent.signature import UNKNOWN_NS, signature_of
from photonic.agent.statedb import AgentStateDB
from photonic.media.hashing import FirstBlockSink, sha256_fd
from photonic.models import ContentHash, WatchMode
from tests.support.daemons import wait_until
from tests.support.photos import make_jpeg

SHOOT = datetime(2024, 6, 1, 10, 0, 0)


@dataclass(frozen=True)
class Watch:
    path: Path
    name: str = "cam"
    mode: WatchMode = WatchMode.REFERENCE


@pytest.fixture
def db(tmp_path: Path) -> Iterator[AgentStateDB]:
    state = AgentStateDB(tmp_path / "buffer" / "agent.db")
    yield state
    state.close()


def _scanner(db: AgentStateDB, tmp_path: Path, watch: Watch) -> Scanner:
    return Scanner(db, [watch], IgnoreRules(), buffer_path=tmp_path / "buffer",
                   max_buffer_size_bytes=1 << 30)


def _scan(scanner: Scanner, watch: Watch) -> ScanReport:
    return asyncio.run(scanner.scan_watch(watch))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mark_all_synced(db: AgentStateDB) -> None:
    """What the uploader does once the server answered COMMITTED for every queued file."""
    db.mark_synced_many([(p.id, p.sha256) for p in db.pending(1000)])


def _same_size_edit(photo: Path) -> bytes:
    """The photo with another capture time: what `exiftool -P` writes for a fixed-size tag."""
    scratch = make_jpeg(photo.with_name("scratch.tmp"), seed=1, capture_time=SHOOT
                        + timedelta(minutes=7))
    data = scratch.read_bytes()
    scratch.unlink()
    assert len(data) == photo.stat().st_size and data != photo.read_bytes()
    return data


def _wait_for_the_ctime_clock(path: Path, ctime_ns: int) -> None:
    """Waits until a change made now gets a later ctime than ctime_ns: the kernel stamps ctime
    from a coarse clock (a few ms), and a rewrite inside the same tick could keep it."""
    probe = path.with_name("ctime-probe.tmp")
    probe.touch()

    def ticked() -> bool:
        os.utime(probe)
        return probe.stat().st_ctime_ns > ctime_ns
    wait_until(ticked, 5, 0.001, "the ctime clock to move on")
    probe.unlink()


def _rewrite_in_place(photo: Path, data: bytes) -> None:
    """Overwrites photo's bytes in the same inode and puts its mtime back, as cp -p does."""
    before = photo.stat()
    _wait_for_the_ctime_clock(photo, before.st_ctime_ns)
    with open(photo, "r+b") as f:
        f.write(data)
    os.utime(photo, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = photo.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino), "not the same size/mtime/inode"
    assert after.st_ctime_ns != before.st_ctime_ns


def _row_stamps(db_file: Path) -> dict[str, tuple[int, int]]:
    with contextlib.closing(sqlite3.connect(db_file)) as conn:
        return {r[0]: (r[1], r[2]) for r in
                conn.execute("SELECT rel_path, updated_ms, seen_gen FROM files")}


@pytest.mark.parametrize("mode", [WatchMode.REFERENCE, WatchMode.INGEST])
def test_reconcile_scan_queues_a_rewrite_that_kept_size_and_mtime(
        db: AgentStateDB, tmp_path: Path, mode: WatchMode) -> None:
    """A synced photo rewritten in place with the same size, mtime and inode is hashed and
    queued by the next reconcile scan, as a new version based on the synced one; the scan after
    that hashes nothing and writes no index row."""
    watch = Watch(tmp_path / "photos", mode=mode)
    photo = make_jpeg(watch.path / "IMG_0001.jpg", seed=1, capture_time=SHOOT)
    make_jpeg(watch.path / "IMG_0002.jpg", seed=2, capture_time=SHOOT)
    old_sha = _sha(photo.read_bytes())
    scanner = _scanner(db, tmp_path, watch)
    assert _scan(scanner, watch).files_queued == 2
    _mark_all_synced(db)
    new = _same_size_edit(photo)
    _rewrite_in_place(photo, new)

    report = _scan(scanner, watch)
    assert (report.files_hashed, report.files_queued) == (1, 1)
    [item] = db.pending(10)
    assert (item.relative_path, item.sha256, item.base_sha256) == (
        "IMG_0001.jpg", _sha(new), old_sha)
    assert _sha(item.source_path.read_bytes()) == _sha(new)

    stamps = _row_stamps(tmp_path / "buffer" / "agent.db")
    again = _scan(scanner, watch)
    assert (again.files_seen, again.files_hashed, again.files_queued) == (2, 0, 0)
    assert _row_stamps(tmp_path / "buffer" / "agent.db") == stamps


def test_watcher_path_queues_a_rewrite_that_kept_size_and_mtime(
        db: AgentStateDB, tmp_path: Path) -> None:
    """scan_path (what the watcher calls for a settled file) hashes and queues a photo rewritten
    in place with the same size and mtime; reported again unchanged, it queues nothing."""
    watch = Watch(tmp_path / "photos")
    photo = make_jpeg(watch.path / "IMG_0001.jpg", seed=1, capture_time=SHOOT)
    scanner = _scanner(db, tmp_path, watch)
    assert asyncio.run(scanner.scan_path("cam", photo))
    _mark_all_synced(db)
    assert not asyncio.run(scanner.scan_path("cam", photo))
    new = _same_size_edit(photo)
    _rewrite_in_place(photo, new)

    assert asyncio.run(scanner.scan_path("cam", photo))
    assert [p.sha256 for p in db.pending(10)] == [_sha(new)]
    assert not asyncio.run(scanner.scan_path("cam", photo))
    entry = db.get_entry("cam", "IMG_0001.jpg")
    assert entry is not None and entry.signature == signature_of(photo.stat())


def test_a_rewrite_while_hashing_that_kept_size_and_mtime_is_not_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the file is rewritten in place (same size and mtime) while it is being hashed, the
    hash is thrown away instead of being recorded under the file's signature: the index would
    otherwise claim the new bytes were hashed, and they would never be sent."""
    photo = make_jpeg(tmp_path / "photos" / "IMG_0001.jpg", seed=1, capture_time=SHOOT)
    new = _same_size_edit(photo)
    def hash_then_rewrite(fd: int, *, on_first_block: FirstBlockSink | None = None
                          ) -> tuple[ContentHash, int]:
        result = sha256_fd(fd, on_first_block=on_first_block)
        _rewrite_in_place(photo, new)
        return result
    monkeypatch.setattr("photonic.agent.hasher.sha256_fd", hash_then_rewrite)
    listed = ListedFile("IMG_0001.jpg", str(photo), photo.stat(), "IMG_0001.jpg")
    candidate = candidate_of(str(photo.parent), listed)
    outcomes = CandidateHasher(tmp_path / "ingest").hash_group([candidate], False, False)
    assert outcomes == [None]


def _legacy_database(db_file: Path, rows: list[tuple[str, os.stat_result, str]]) -> None:
    """An agent database as the version before ctime was recorded left it: only migration 001
    applied, files indexed by (size, mtime_ns, inode) and synced."""
    init = importlib.resources.files("photonic.agent.migrations") / "001_init.sql"
    db_file.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(db_file)) as conn:
        conn.executescript(init.read_text(encoding="utf-8"))
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.executemany(
            "INSERT INTO files (watch_name, rel_path, size, mtime_ns, inode, sha256, "
            "synced_sha256, updated_ms) VALUES ('cam', ?, ?, ?, ?, ?, ?, 0)",
            [(rel, st.st_size, st.st_mtime_ns, st.st_ino, sha, sha) for rel, st, sha in rows])
        conn.commit()


def test_rows_from_before_ctime_was_recorded_are_hashed_once_then_stable(
        tmp_path: Path) -> None:
    """After the upgrade, every file indexed without a ctime is hashed once more: one edited in
    place (same size, mtime, inode) before the upgrade is queued, an untouched one finds the
    server's content and queues nothing; the next scan hashes nothing."""
    watch = Watch(tmp_path / "photos")
    edited = make_jpeg(watch.path / "edited.jpg", seed=1, capture_time=SHOOT)
    kept = make_jpeg(watch.path / "kept.jpg", seed=2, capture_time=SHOOT)
    synced = {p.name: _sha(p.read_bytes()) for p in (edited, kept)}
    new = _same_size_edit(edited)
    _rewrite_in_place(edited, new)
    _legacy_database(tmp_path / "buffer" / "agent.db",
                     [(p.name, p.stat(), synced[p.name]) for p in (edited, kept)])

    db = AgentStateDB(tmp_path / "buffer" / "agent.db")
    try:
        assert {e.rel_path: e.ctime_ns for e in db.iter_index("cam")} == {
            "edited.jpg": UNKNOWN_NS, "kept.jpg": UNKNOWN_NS}
        scanner = _scanner(db, tmp_path, watch)
        report = _scan(scanner, watch)
        assert (report.files_hashed, report.files_queued) == (2, 1)
        [item] = db.pending(10)
        assert (item.relative_path, item.sha256, item.base_sha256) == (
            "edited.jpg", _sha(new), synced["edited.jpg"])
        again = _scan(scanner, watch)
        assert (again.files_seen, again.files_hashed, again.files_queued) == (2, 0, 0)
    finally:
        db.close()

