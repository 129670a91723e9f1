"""Tests for the agent's durable state: index, queue, watches, crash safety."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from photonic.agent.signature import FileSignature
from photonic.agent.statedb import AgentStateDB, FileRecord, WatchStatus
from photonic.models import ContentHash, ExifSummary

SHA_A = ContentHash("a" * 64)
SHA_B = ContentHash("b" * 64)
SHA_C = ContentHash("c" * 64)
EXIF = ExifSummary(capture_time_unix_ms=1_700_000_000_000, camera_make="Fuji", has_gps=True)
SIG = FileSignature(size=10, mtime_ns=5, inode=7, ctime_ns=9, birth_ns=0)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[AgentStateDB]:
    state = AgentStateDB(tmp_path / "agent.db", clock_ms=lambda: 1234)
    yield state
    state.close()


def _record(db: AgentStateDB, rel: str, sha: ContentHash, *, size: int = 10) -> bool:
    return db.record_file(
        "cam", rel, signature=SIG._replace(size=size), sha256=sha, exif=EXIF,
        source_path=Path("/photos") / rel,
    )


def test_enqueue_pending_mark_synced_round_trip(db: AgentStateDB) -> None:
    """A recorded file is pending with all its fields, and COMMITTED removes it for good."""
    assert _record(db, "a/IMG_1.JPG", SHA_A)
    [item] = db.pending(10)
    assert (item.watch_name, item.relative_path, item.sha256) == ("cam", "a/IMG_1.JPG", SHA_A)
    assert item.source_path == Path("/photos/a/IMG_1.JPG")
    assert item.exif == EXIF
    assert (item.base_sha256, item.attempts, item.enqueued_unix_ms) == ("", 0, 1234)
    db.mark_synced(item.id, SHA_A)
    assert db.pending(10) == []
    entry = db.get_entry("cam", "a/IMG_1.JPG")
    assert entry is not None and entry.synced_sha256 == SHA_A
    assert not _record(db, "a/IMG_1.JPG", SHA_A), "content the server has is not queued again"


def test_record_file_is_idempotent(db: AgentStateDB) -> None:
    """Recording the same content twice keeps one queue row with the same id."""
    _record(db, "x.jpg", SHA_A)
    first = db.pending(10)
    _record(db, "x.jpg", SHA_A)
    assert db.pending(10) == first


def test_new_version_gets_base_of_synced_content(db: AgentStateDB) -> None:
    """A changed file is queued with base_sha256 = what the server last committed."""
    _record(db, "x.jpg", SHA_A)
    db.mark_synced(db.pending(1)[0].id, SHA_A)
    assert _record(db, "x.jpg", SHA_B)
    [item] = db.pending(10)
    assert (item.sha256, item.base_sha256) == (SHA_B, SHA_A)


def test_mark_synced_keeps_row_whose_content_changed(db: AgentStateDB) -> None:
    """COMMITTED for old content must not drop a re-enqueued newer version of the path."""
    _record(db, "x.jpg", SHA_A)
    old = db.pending(1)[0]
    _record(db, "x.jpg", SHA_B)
    db.mark_synced(old.id, SHA_A)
    [item] = db.pending(10)
    assert (item.sha256, item.base_sha256) == (SHA_B, SHA_A)
    entry = db.get_entry("cam", "x.jpg")
    assert entry is not None and (entry.sha256, entry.synced_sha256) == (SHA_B, SHA_A)


def test_reverting_to_synced_content_unqueues(db: AgentStateDB) -> None:
    """A file edited and then restored to the synced content needs no upload."""
    _record(db, "x.jpg", SHA_A)
    db.mark_synced(db.pending(1)[0].id, SHA_A)
    _record(db, "x.jpg", SHA_B)
    assert not _record(db, "x.jpg", SHA_A)
    assert db.pending(10) == []


def test_errors_after_max_attempts_and_requeue(db: AgentStateDB) -> None:
    """A file fails into 'error' after max_attempts, leaves pending, and requeue restores it."""
    _record(db, "x.jpg", SHA_A)
    qid = db.pending(1)[0].id
    db.mark_failed(qid, "net down", max_attempts=2)
    assert db.pending(1)[0].attempts == 1
    db.mark_failed(qid, "net down", max_attempts=2)
    assert db.pending(10) == []
    assert db.queue_stats().errored == 1
    assert db.requeue_errors() == 1
    assert db.pending(1)[0].attempts == 0


def test_stats_and_exclude_ids(db: AgentStateDB) -> None:
    """Stats count files and bytes; pending() skips excluded (in-flight) ids."""
    for i, sha in enumerate((SHA_A, SHA_B, SHA_C)):
        _record(db, f"f{i}.jpg", sha, size=100 * (i + 1))
    stats = db.queue_stats()
    assert (stats.files, stats.bytes, stats.errored) == (3, 600, 0)
    ids = [p.id for p in db.pending(10)]
    rest = db.pending(2, exclude_ids={ids[0]})
    assert [p.id for p in rest] == ids[1:]
    assert db.queued_bytes_under(Path("/photos")) == 600
    assert db.queued_bytes_under(Path("/elsewhere")) == 0


def test_drop_pending_forces_rehash_if_file_returns(db: AgentStateDB) -> None:
    """A dropped entry leaves the queue and its index signature no longer matches any file."""
    _record(db, "x.jpg", SHA_A)
    db.drop_pending(db.pending(1)[0].id, "vanished")
    assert db.pending(10) == []
    entry = db.get_entry("cam", "x.jpg")
    assert entry is not None and entry.missing and entry.mtime_ns == -1


def test_scan_generation_finds_unseen_files(db: AgentStateDB) -> None:
    """Present rows neither seen by the walk nor written during the scan are the vanished."""
    _record(db, "keep.jpg", SHA_A)
    _record(db, "seen.jpg", SHA_A)
    _record(db, "gone.jpg", SHA_B)
    gen = db.begin_scan("cam", Path("/photos"))
    db.touch_unchanged_many("cam", [("keep.jpg", SIG)])
    unseen = db.unseen_paths("cam", gen, {"seen.jpg"})
    assert unseen == ["gone.jpg"]
    assert db.mark_unseen_missing("cam", gen, unseen) == 1
    assert [e.rel_path for e in db.iter_index("cam") if e.missing] == ["gone.jpg"]
    assert db.indexed_count("cam") == 2
    assert db.get_index_states("cam", ["gone.jpg", "keep.jpg"]) == {
        "gone.jpg": (SIG, True), "keep.jpg": (SIG, False)}
    db.touch_unchanged("cam", "gone.jpg", SIG)
    assert db.indexed_count("cam") == 3


def test_a_row_written_during_the_scan_is_not_marked_missing(db: AgentStateDB) -> None:
    """The watcher may record a file between the unseen query and the update."""
    _record(db, "late.jpg", SHA_A)
    gen = db.begin_scan("cam", Path("/photos"))
    unseen = db.unseen_paths("cam", gen, set())
    assert unseen == ["late.jpg"]
    _record(db, "late.jpg", SHA_B)  # stamps this scan's generation
    assert db.mark_unseen_missing("cam", gen, unseen) == 0
    assert db.indexed_count("cam") == 1


def test_record_files_batch_and_signatures(db: AgentStateDB) -> None:
    """A batch is recorded in one call, and signatures are found for exactly the indexed paths."""
    records = [
        FileRecord(f"p{i}.jpg", FileSignature(i, 100 + i, 1000 + i, 2000 + i, 3000 + i),
                   ContentHash(f"{i:064x}"), EXIF, Path(f"/photos/p{i}.jpg"))
        for i in range(600)
    ]
    assert all(db.record_files("cam", records))
    wanted = [r.rel_path for r in records] + ["absent.jpg"]
    signatures = db.get_signatures("cam", wanted)
    assert len(signatures) == 600
    assert signatures["p7.jpg"] == FileSignature(7, 107, 1007, 2007, 3007)
    assert db.queued_source("cam", "p7.jpg") == Path("/photos/p7.jpg")
    assert db.queued_source("cam", "absent.jpg") is None


def test_iter_index_streams_across_pages(db: AgentStateDB, tmp_path: Path) -> None:
    """iter_index yields every row once, in path order, across page boundaries."""
    names = [f"{i:05d}.jpg" for i in range(2500)]
    for name in names[:3]:
        _record(db, name, SHA_A)
    rows = [(n, 1, 1, 1) for n in names]
    conn = sqlite3.connect(tmp_path / "agent.db")
    conn.executemany(
        "INSERT OR IGNORE INTO files (watch_name, rel_path, size, mtime_ns, inode, sha256, "
        "updated_ms) VALUES ('cam', ?, ?, ?, ?, 'x', 0)",
        rows,
    )
    conn.commit()
    conn.close()
    assert [e.rel_path for e in db.iter_index("cam")] == names


def test_watch_states(db: AgentStateDB) -> None:
    """Watch states are upserted and listed for `photonic status`."""
    db.set_watch_state("cam", Path("/photos"), "ok", file_count=3)
    db.set_watch_state("cam", Path("/photos"), "frozen", "most files vanished")
    [state] = db.watch_states()
    assert (state.state, state.reason, state.file_count) == (
        WatchStatus.FROZEN, "most files vanished", 3,
    )


def test_durable_across_reopen_and_read_only(tmp_path: Path) -> None:
    """Rows survive close/reopen (migrations run once), and a read-only handle sees them."""
    path = tmp_path / "agent.db"
    first = AgentStateDB(path)
    _record(first, "x.jpg", SHA_A)
    first.close()
    second = AgentStateDB(path)
    reader = AgentStateDB(path, read_only=True)
    assert [p.sha256 for p in reader.pending(10)] == [SHA_A]
    assert [p.sha256 for p in second.pending(10)] == [SHA_A]
    reader.close()
    second.close()


def test_enqueue_survives_sigkill(tmp_path: Path) -> None:
    """Once record_file returns, the row survives the process being killed with SIGKILL."""
    path = tmp_path / "agent.db"
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from photonic.agent.signature import FileSignature
        from photonic.agent.statedb import AgentStateDB
        from photonic.models import ContentHash, ExifSummary
        db = AgentStateDB(Path({str(path)!r}))
        db.record_file("cam", "k.jpg", signature=FileSignature(1, 1, 1, 1, 0),
                       sha256=ContentHash("d" * 64), exif=ExifSummary(),
                       source_path=Path("/p/k.jpg"))
        os.kill(os.getpid(), 9)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[3],
                          check=False, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    reopened = AgentStateDB(path)
    assert [p.relative_path for p in reopened.pending(10)] == ["k.jpg"]
    reopened.close()
