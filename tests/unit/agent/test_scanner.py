"""Tests for the scanner: reconcile by signature (size, mtime, inode, ctime, birth time), skip
rules, ingest, freezing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from photonic.agent.ignore import IgnoreRules
from photonic.agent.listing import NOT_REGULAR, NOT_UTF8, OUTSIDE_WATCH, PERMISSION_DENIED
from photonic.agent.scanner import BUFFER_FULL, Scanner, ScanReport
from photonic.agent.statedb import AgentStateDB, WatchStatus
from photonic.models import WatchMode
from tests.support.photos import make_jpeg


@dataclass(frozen=True)
class Watch:
    path: Path
    name: str
    mode: WatchMode = WatchMode.REFERENCE


@pytest.fixture
def db(tmp_path: Path) -> Iterator[AgentStateDB]:
    state = AgentStateDB(tmp_path / "buffer" / "agent.db")
    yield state
    state.close()


def _write(path: Path, data: bytes = b"photo") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _scanner(db: AgentStateDB, tmp_path: Path, watch: Watch, **kwargs: int) -> Scanner:
    max_bytes = kwargs.pop("max_buffer_size_bytes", 1 << 30)
    return Scanner(db, [watch], IgnoreRules(), buffer_path=tmp_path / "buffer",
                   max_buffer_size_bytes=max_bytes, **kwargs)


def _scan(scanner: Scanner, watch: Watch) -> ScanReport:
    return asyncio.run(scanner.scan_watch(watch))


@pytest.fixture
def watch(tmp_path: Path) -> Watch:
    root = tmp_path / "photos"
    root.mkdir()
    return Watch(root, "cam")


def test_first_scan_hashes_all_second_scan_none(db: AgentStateDB, tmp_path: Path,
                                               watch: Watch) -> None:
    """The first scan hashes and queues every file; an unchanged rescan hashes nothing."""
    make_jpeg(watch.path / "2024" / "trip" / "IMG_0001.JPG", seed=1, width=64, height=48)
    _write(watch.path / "été à Paris" / "my photo 01.jpg", b"unicode and spaces")
    _write(watch.path / "empty.jpg", b"")
    scanner = _scanner(db, tmp_path, watch)
    first = _scan(scanner, watch)
    assert (first.files_seen, first.files_hashed, first.files_queued) == (3, 3, 3)
    paths = sorted(p.relative_path for p in db.pending(10))
    assert paths == ["2024/trip/IMG_0001.JPG", "empty.jpg", "été à Paris/my photo 01.jpg"]
    by_path = {p.relative_path: p for p in db.pending(10)}
    assert by_path["empty.jpg"].sha256 == hashlib.sha256(b"").hexdigest()
    assert by_path["empty.jpg"].size == 0
    assert by_path["2024/trip/IMG_0001.JPG"].exif.camera_make == "Nikon"
    assert by_path["2024/trip/IMG_0001.JPG"].source_path == watch.path / "2024/trip/IMG_0001.JPG"
    second = _scan(scanner, watch)
    assert (second.files_seen, second.files_hashed, second.files_queued) == (3, 0, 0)
    assert not second.frozen and not second.missing


def _mark_all_synced(db: AgentStateDB) -> None:
    """What the uploader does once the server answered COMMITTED for every queued file."""
    db.mark_synced_many([(p.id, p.sha256) for p in db.pending(1000)])


def test_touched_mtime_rehashes_only_that_file(db: AgentStateDB, tmp_path: Path,
                                              watch: Watch) -> None:
    """Changing one file's mtime rehashes exactly that file; same content is not re-queued."""
    a = _write(watch.path / "a.jpg", b"aaa")
    _write(watch.path / "b.jpg", b"bbb")
    scanner = _scanner(db, tmp_path, watch)
    _scan(scanner, watch)
    for item in db.pending(10):
        db.mark_synced(item.id, item.sha256)
    st = a.stat()
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    report = _scan(scanner, watch)
    assert (report.files_hashed, report.files_queued) == (1, 0)
    a.write_bytes(b"new content")
    report = _scan(scanner, watch)
    assert (report.files_hashed, report.files_queued) == (1, 1)
    [item] = db.pending(10)
    assert item.relative_path == "a.jpg"
    assert item.base_sha256 == hashlib.sha256(b"aaa").hexdigest()


def test_ignored_files_and_folders_are_not_scanned(db: AgentStateDB, tmp_path: Path,
                                                   watch: Watch) -> None:
    """Default ignore rules skip Lightroom previews and OS litter; dotfiles are kept."""
    _write(watch.path / "Cat Previews.lrdata" / "a" / "x.lrprev")
    _write(watch.path / ".DS_Store")
    _write(watch.path / "dl.jpg.part")
    _write(watch.path / ".hidden.jpg")
    report = _scan(_scanner(db, tmp_path, watch), watch)
    assert report.files_seen == 1
    assert [p.relative_path for p in db.pending(10)] == [".hidden.jpg"]


def test_symlinks_inside_followed_outside_skipped(db: AgentStateDB, tmp_path: Path,
                                                  watch: Watch) -> None:
    """A symlink to a file in the watch is synced; one pointing outside is skipped with reason."""
    _write(watch.path / "real.jpg", b"inside")
    outside = _write(tmp_path / "elsewhere" / "secret.jpg", b"outside")
    (watch.path / "link_in.jpg").symlink_to(watch.path / "real.jpg")
    (watch.path / "link_out.jpg").symlink_to(outside)
    (watch.path / "linked_dir").symlink_to(tmp_path / "elsewhere")
    report = _scan(_scanner(db, tmp_path, watch), watch)
    assert sorted(p.relative_path for p in db.pending(10)) == ["link_in.jpg", "real.jpg"]
    assert ("link_out.jpg", OUTSIDE_WATCH) in report.skipped
    assert all("secret" not in str(p.source_path) for p in db.pending(10))


def test_fifo_is_skipped_without_blocking(db: AgentStateDB, tmp_path: Path, watch: Watch) -> None:
    """A FIFO is never opened (that would block forever); it is reported as skipped."""
    os.mkfifo(watch.path / "pipe.jpg")
    _write(watch.path / "ok.jpg")
    report = _scan(_scanner(db, tmp_path, watch), watch)
    assert ("pipe.jpg", NOT_REGULAR) in report.skipped
    assert report.files_queued == 1


def test_unreadable_file_is_skipped(db: AgentStateDB, tmp_path: Path, watch: Watch) -> None:
    """A file the agent may not read is skipped with a reason; the scan carries on."""
    locked = _write(watch.path / "locked.jpg")
    locked.chmod(0)
    _write(watch.path / "ok.jpg")
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as root: permissions do not stop reads, cannot test this")
        report = _scan(_scanner(db, tmp_path, watch), watch)
    finally:
        locked.chmod(0o644)
    assert ("locked.jpg", PERMISSION_DENIED) in report.skipped
    assert [p.relative_path for p in db.pending(10)] == ["ok.jpg"]


def test_non_utf8_name_is_skipped(db: AgentStateDB, tmp_path: Path, watch: Watch) -> None:
    """A file name that is not valid UTF-8 is skipped with a reason instead of crashing."""
    try:
        fd = os.open(os.fsencode(watch.path) + b"/bad-\xff.jpg", os.O_CREAT | os.O_WRONLY)
    except OSError as exc:
        pytest.skip(f"filesystem refuses non-UTF-8 names: {exc}")
    os.close(fd)
    report = _scan(_scanner(db, tmp_path, watch), watch)
    assert [reason for _, reason in report.skipped] == [NOT_UTF8]
    assert db.pending(10) == []


def test_ingest_copies_into_buffer_and_respects_limit(db: AgentStateDB, tmp_path: Path) -> None:
    """Ingest mode queues a durable copy in the buffer and refuses copies past the size limit."""
    card = Watch(tmp_path / "card", "sd", WatchMode.INGEST)
    _write(card.path / "DCIM" / "IMG_1.JPG", b"x" * 600)
    _write(card.path / "DCIM" / "IMG_2.JPG", b"y" * 600)
    scanner = _scanner(db, tmp_path, card, max_buffer_size_bytes=1000, hash_concurrency=1)
    report = _scan(scanner, card)
    assert report.files_queued == 1
    assert [reason for _, reason in report.skipped] == [BUFFER_FULL]
    [item] = db.pending(10)
    assert item.source_path.is_relative_to(tmp_path / "buffer" / "ingest")
    assert item.source_path.name in {"IMG_1.JPG", "IMG_2.JPG"}
    assert hashlib.sha256(item.source_path.read_bytes()).hexdigest() == item.sha256
    assert list((tmp_path / "buffer" / "ingest" / "tmp").iterdir()) == []
    db.mark_synced(item.id, item.sha256)
    report = _scan(scanner, card)
    assert (report.files_hashed, report.files_queued, report.skipped) == (1, 1, ())


def test_lost_ingest_copy_is_made_again(db: AgentStateDB, tmp_path: Path) -> None:
    """If a queued buffer copy vanishes while the card file is unchanged, scan_path recopies it."""
    card = Watch(tmp_path / "card", "sd", WatchMode.INGEST)
    photo = _write(card.path / "IMG_1.JPG", b"z" * 100)
    scanner = _scanner(db, tmp_path, card)
    _scan(scanner, card)
    [item] = db.pending(10)
    item.source_path.unlink()
    assert asyncio.run(scanner.scan_path("sd", photo))
    [again] = db.pending(10)
    assert again.id == item.id and again.source_path.read_bytes() == b"z" * 100


def test_buffer_inside_watch_is_not_scanned(db: AgentStateDB, tmp_path: Path) -> None:
    """A buffer folder placed inside a watch folder is never scanned as photos."""
    root = tmp_path / "photos"
    _write(root / "a.jpg")
    _write(root / "buf" / "ingest" / "copy.jpg")
    watch = Watch(root, "cam")
    scanner = Scanner(db, [watch], IgnoreRules(), buffer_path=root / "buf",
                      max_buffer_size_bytes=1 << 20)
    _scan(scanner, watch)
    assert [p.relative_path for p in db.pending(10)] == ["a.jpg"]
    assert not asyncio.run(scanner.scan_path("cam", root / "buf" / "ingest" / "copy.jpg"))


def test_missing_folder_reported_and_index_untouched(db: AgentStateDB, tmp_path: Path,
                                                    watch: Watch) -> None:
    """A vanished watch root is reported missing and no indexed file is marked missing."""
    _write(watch.path / "a.jpg")
    scanner = _scanner(db, tmp_path, watch)
    _scan(scanner, watch)
    shutil.rmtree(watch.path)
    report = _scan(scanner, watch)
    assert report.missing and report.files_seen == 0
    assert [e.missing for e in db.iter_index("cam")] == [False]
    assert [w.state for w in db.watch_states()] == [WatchStatus.MISSING]


def test_emptied_folder_is_frozen(db: AgentStateDB, tmp_path: Path, watch: Watch) -> None:
    """A folder that suddenly holds nothing is frozen, and its index is left as it was."""
    for i in range(3):
        _write(watch.path / f"{i}.jpg", str(i).encode())
    scanner = _scanner(db, tmp_path, watch)
    _scan(scanner, watch)
    for child in watch.path.iterdir():
        child.unlink()
    report = _scan(scanner, watch)
    assert report.frozen
    assert db.indexed_count("cam") == 3
    assert [w.state for w in db.watch_states()] == [WatchStatus.FROZEN]


def test_most_files_gone_freezes_few_gone_marks_missing(db: AgentStateDB, tmp_path: Path,
                                                       watch: Watch) -> None:
    """Losing most files freezes the watch; losing a few just marks those few missing."""
    for i in range(30):
        _write(watch.path / f"{i:02d}.jpg", str(i).encode())
    scanner = _scanner(db, tmp_path, watch, freeze_min_files=20)
    _scan(scanner, watch)
    for i in range(3):
        (watch.path / f"{i:02d}.jpg").unlink()
    report = _scan(scanner, watch)
    assert not report.frozen
    assert sorted(e.rel_path for e in db.iter_index("cam") if e.missing) == [
        "00.jpg", "01.jpg", "02.jpg"
    ]
    for i in range(3, 25):
        (watch.path / f"{i:02d}.jpg").unlink()
    report = _scan(scanner, watch)
    assert report.frozen
    assert db.indexed_count("cam") == 27


def test_a_file_that_comes_back_unchanged_is_present_again(db: AgentStateDB, tmp_path: Path,
                                                          watch: Watch) -> None:
    """Moved out and back (same inode, size, mtime): no longer missing, and nothing queued.
    A rename moves the ctime on most file systems, so the file may be hashed once more, which
    finds the content the server already has; the scan after that hashes nothing."""
    photo = _write(watch.path / "a.jpg", b"a")
    _write(watch.path / "b.jpg", b"b")
    scanner = _scanner(db, tmp_path, watch)
    _scan(scanner, watch)
    _mark_all_synced(db)
    aside = photo.rename(tmp_path / "aside.jpg")
    _scan(scanner, watch)
    assert [e.rel_path for e in db.iter_index("cam") if e.missing] == ["a.jpg"]
    aside.rename(photo)
    report = _scan(scanner, watch)
    assert (report.files_seen, report.files_queued) == (2, 0)
    assert report.files_hashed <= 1
    assert not [e.rel_path for e in db.iter_index("cam") if e.missing]
    assert db.pending(10) == []
    assert _scan(scanner, watch).files_hashed == 0


def test_an_unchanged_rescan_writes_no_index_row(db: AgentStateDB, tmp_path: Path,
                                                 watch: Watch) -> None:
    """Nothing changed, nothing written: rows keep the time of their last real change."""
    for i in range(5):
        _write(watch.path / f"{i}.jpg", str(i).encode())
    scanner = _scanner(db, tmp_path, watch)
    _scan(scanner, watch)
    before = _row_stamps(tmp_path / "buffer" / "agent.db")
    time.sleep(0.01)
    report = _scan(scanner, watch)
    assert (report.files_seen, report.files_hashed) == (5, 0)
    assert _row_stamps(tmp_path / "buffer" / "agent.db") == before


def _row_stamps(db_file: Path) -> dict[str, tuple[int, int]]:
    with contextlib.closing(sqlite3.connect(db_file)) as conn:
        return {r[0]: (r[1], r[2]) for r in
                conn.execute("SELECT rel_path, updated_ms, seen_gen FROM files")}


def test_scan_path_queues_a_settled_file_once(db: AgentStateDB, tmp_path: Path,
                                              watch: Watch) -> None:
    """The watcher's single-file path queues new content once and ignores ignored names."""
    scanner = _scanner(db, tmp_path, watch)
    photo = _write(watch.path / "new" / "IMG_9.JPG", b"fresh")
    assert asyncio.run(scanner.scan_path("cam", photo, incomplete=True))
    assert not asyncio.run(scanner.scan_path("cam", photo))
    [item] = db.pending(10)
    assert (item.relative_path, item.incomplete) == ("new/IMG_9.JPG", True)
    tmp = _write(watch.path / "new" / "x.tmp")
    assert not asyncio.run(scanner.scan_path("cam", tmp))
    outside = _write(tmp_path / "other.jpg")
    assert not asyncio.run(scanner.scan_path("cam", outside))


def test_large_tree_rescan_hashes_nothing(db: AgentStateDB, tmp_path: Path, watch: Watch) -> None:
    """A 20,000-file tree (sidecar-sized files) rescans without hashing an unchanged file."""
    for d in range(100):
        folder = watch.path / f"d{d:03d}"
        folder.mkdir()
        for f in range(200):
            (folder / f"{f:03d}.xmp").write_bytes(b"%d/%d" % (d, f))
    scanner = _scanner(db, tmp_path, watch, hash_concurrency=4)
    first = _scan(scanner, watch)
    assert (first.files_seen, first.files_queued) == (20_000, 20_000)
    second = _scan(scanner, watch)
    assert (second.files_seen, second.files_hashed, second.files_queued) == (20_000, 0, 0)
    assert db.indexed_count("cam") == 20_000


def test_daemon_scan_defers_files_still_being_written(
    db: AgentStateDB, tmp_path: Path, watch: Watch
) -> None:
    """With deferral on, a file changed moments ago or a young truncated JPEG is neither
    hashed nor judged missing; once it has settled, the next scan queues it."""
    scanner = _scanner(db, tmp_path, watch)
    handed_over: list[tuple[str, Path]] = []
    scanner.defer_files_in_flight(settle_delay_s=60.0, incomplete_timeout_s=600.0,
                                  on_deferred=lambda w, p: handed_over.append((w, p)))
    fresh = _write(watch.path / "fresh.jpg", b"still being written")
    report = _scan(scanner, watch)
    assert (report.files_hashed, report.files_queued) == (0, 0)
    assert [(w, p.name) for w, p in handed_over] == [("cam", "fresh.jpg")], \
        "a deferred file goes to the watcher, which may never get an event for it"

    old = os.stat(fresh).st_mtime - 3600
    os.utime(fresh, (old, old))
    truncated = watch.path / "half.jpg"
    make_jpeg(truncated, seed=1)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    os.utime(truncated, (old + 3100, old + 3100))  # 500 s old: settled, but no end marker
    report = _scan(scanner, watch)
    assert report.files_queued == 1, "the settled file is queued, the truncated one waits"
    assert db.queue_stats().files == 1

    scanner.defer_files_in_flight(settle_delay_s=60.0, incomplete_timeout_s=300.0,
                                  on_deferred=lambda w, p: handed_over.append((w, p)))
    report = _scan(scanner, watch)
    assert report.files_queued == 1, "past incomplete_timeout the truncated photo is kept too"


def test_settled_files_are_queued_together(db: AgentStateDB, tmp_path: Path,
                                           watch: Watch) -> None:
    """A card's worth of settled files goes in as one call: every new one queued in batched
    transactions, unchanged ones left alone, a vanished or ignored one passed over, and the
    incomplete flag kept per file."""
    scanner = _scanner(db, tmp_path, watch)
    photos = [_write(watch.path / "card" / f"IMG_{n:04d}.JPG", f"photo {n}".encode())
              for n in range(300)]
    queued = asyncio.run(scanner.scan_paths("cam", [(p, False) for p in photos]))
    assert queued == 300 == len(db.pending(1000))
    changed = _write(photos[0], b"edited")
    late = _write(watch.path / "card" / "IMG_late.JPG", b"half")
    gone = watch.path / "card" / "IMG_gone.JPG"
    ignored = _write(watch.path / "card" / "x.tmp")
    again = [(p, False) for p in photos[1:]] + [(changed, False), (late, True), (gone, False),
                                                 (ignored, False)]
    assert asyncio.run(scanner.scan_paths("cam", again)) == 2
    by_path = {p.relative_path: p for p in db.pending(1000)}
    assert by_path["card/IMG_0000.JPG"].sha256 == hashlib.sha256(b"edited").hexdigest()
    assert by_path["card/IMG_late.JPG"].incomplete
    assert not by_path["card/IMG_0001.JPG"].incomplete
    assert asyncio.run(scanner.scan_paths("nope", [(photos[1], False)])) == 0
