"""The agent's report of its queue by shoot (photonic.agent.pending_report), over a real state
database: per folder, the uploader's gap and camera rule, sidecars travelling with their photo
but not counted, errored files still reported, the 50 most recent shoots, bounded strings, and
no database read at all when the queue is empty."""

from __future__ import annotations

from pathlib import Path

from photonic.agent.pending_report import PendingShootReport, pending_shoots
from photonic.agent.signature import FileSignature
from photonic.agent.statedb import AgentStateDB
from photonic.agent.statedb_queue import PendingFile
from photonic.models import ContentHash, ExifSummary
from photonic.shoots import MAX_CAMERA_CHARS, MAX_PENDING_SHOOTS, PendingShoot

HOUR_MS = 3_600_000
T0 = 1_700_000_000_000


def _queue(db: AgentStateDB, watch: str, rel: str, t: int, *, camera: str = "Canon R5",
           size: int = 100) -> None:
    make, _, model = camera.partition(" ")
    n = len(db.queued_for_shoots(10_000)) + 1
    db.record_file(watch, rel, signature=FileSignature(size, t * 1_000_000, n, 1, 0),
                   sha256=ContentHash(f"{n:064x}"),
                   exif=ExifSummary(capture_time_unix_ms=t, camera_make=make,
                                    camera_model=model),
                   source_path=Path("/nowhere") / rel)


def test_queue_is_reported_per_folder_and_shoot(tmp_path: Path) -> None:
    """Two folders, a gap over the shoot gap, a camera change, a RAW+XMP pair (one photo,
    both files' bytes) and a file that ran out of attempts: each shoot as the server will
    merge it, newest first."""
    db = AgentStateDB(tmp_path / "agent.db")
    _queue(db, "photos", "2024/trip/a.CR3", T0)
    _queue(db, "photos", "2024/trip/a.xmp", 0, camera="", size=5)
    _queue(db, "photos", "2024/trip/b.CR3", T0 + HOUR_MS)
    _queue(db, "photos", "2024/trip/c.jpg", T0 + HOUR_MS + 1, camera="Nikon Z6")
    _queue(db, "photos", "2024/trip/d.jpg", T0 + 5 * HOUR_MS)
    _queue(db, "photos", "top.jpg", T0)
    failed = db.queued_for_shoots(100)[-1]
    db.mark_failed(failed.id, "refused", max_attempts=1)
    report = PendingShootReport(db, shoot_gap_s=2 * 3600).shoots(queued_files=6)
    assert report == [
        PendingShoot("photos", "2024/trip", T0 + 5 * HOUR_MS, T0 + 5 * HOUR_MS, 1, 100,
                     "Canon R5"),
        PendingShoot("photos", "2024/trip", T0 + HOUR_MS + 1, T0 + HOUR_MS + 1, 1, 100,
                     "Nikon Z6"),
        PendingShoot("photos", "2024/trip", T0, T0 + HOUR_MS, 2, 205, "Canon R5"),
        PendingShoot("photos", "", T0, T0, 1, 100, "Canon R5"),
    ]
    db.close()


def test_an_empty_queue_is_not_read() -> None:
    """queued_files 0: no database read, an empty report."""
    class Unreadable:
        def queued_for_shoots(self, limit: int) -> list[PendingFile]:
            raise AssertionError("read an empty queue")

    assert PendingShootReport(Unreadable(), shoot_gap_s=60).shoots(0) == []


def test_at_most_fifty_most_recent_shoots_with_bounded_strings() -> None:
    """60 shoots a day apart: the 50 latest are reported; an overlong camera is clipped."""
    camera = "C" * (MAX_CAMERA_CHARS + 40)
    files = [PendingFile(i, "photos", f"d/{i}.jpg", Path(), ContentHash(""), 10, 0,
                         ExifSummary(capture_time_unix_ms=T0 + i * 24 * HOUR_MS,
                                     camera_model=camera), "", False, 0, 0)
             for i in range(60)]
    report = pending_shoots(files, shoot_gap_s=7200)
    assert len(report) == MAX_PENDING_SHOOTS
    assert report[0].start_ms == T0 + 59 * 24 * HOUR_MS
    assert report[-1].start_ms == T0 + 10 * 24 * HOUR_MS
    assert all(len(s.camera) == MAX_CAMERA_CHARS for s in report)
