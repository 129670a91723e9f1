"""Tests for the agent's batch planner: units, shoots, ordering, limits and adaptive sizing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from photonic.agent.batcher import (
    AdaptiveBatchSize,
    Batch,
    group_shoots,
    group_units,
    plan_batches,
)
from photonic.agent.statedb import PendingFile
from photonic.models import ContentHash, ExifSummary

HOUR_MS = 3_600_000
T0_MS = 1_700_000_000_000
NIKON = ExifSummary(camera_make="NIKON", camera_model="Z6")
CANON = ExifSummary(camera_make="Canon", camera_model="R5")


@dataclass(frozen=True)
class QueuedFile:
    id: int
    relative_path: str
    size: int = 1000
    watch_name: str = "photos"
    mtime_ns: int = 0
    exif: ExifSummary = field(default_factory=ExifSummary)
    enqueued_unix_ms: int = 0


def shot(
    fid: int, path: str, at_ms: int, camera: ExifSummary = NIKON, size: int = 1000
) -> QueuedFile:
    exif = ExifSummary(
        capture_time_unix_ms=at_ms,
        camera_make=camera.camera_make,
        camera_model=camera.camera_model,
    )
    return QueuedFile(fid, path, size=size, exif=exif, mtime_ns=(at_ms + 999) * 1_000_000)


def sidecar(fid: int, path: str, mtime_ms: int = T0_MS + 50 * HOUR_MS) -> QueuedFile:
    return QueuedFile(fid, path, size=10, mtime_ns=mtime_ms * 1_000_000)


def paths(batch: Batch[QueuedFile]) -> list[str]:
    return [f.relative_path for f in batch.files]


def test_units_group_raw_jpeg_and_both_sidecar_styles_case_insensitively() -> None:
    """DSC_0001.NEF, dsc_0001.JPG, DSC_0001.xmp and DSC_0001.NEF.XMP form one unit."""
    files = [
        shot(1, "card/DSC_0001.NEF", T0_MS),
        shot(2, "card/dsc_0001.JPG", T0_MS),
        sidecar(3, "card/DSC_0001.xmp"),
        sidecar(4, "card/DSC_0001.NEF.XMP"),
        shot(5, "card/DSC_0002.NEF", T0_MS + 1000),
    ]
    units = group_units(files)
    assert sorted(sorted(f.id for f in u.files) for u in units) == [[1, 2, 3, 4], [5]]
    first = next(u for u in units if len(u.files) == 4)
    assert first.capture_unix_ms == T0_MS
    assert first.camera == "NIKON Z6"
    assert first.bytes == 2020


def test_units_do_not_cross_directories_or_watches() -> None:
    """Same stem in another directory or another watch is a different unit."""
    files = [
        shot(1, "a/IMG_1.CR3", T0_MS),
        shot(2, "b/IMG_1.JPG", T0_MS),
        QueuedFile(3, "a/IMG_1.JPG", watch_name="other", exif=NIKON),
    ]
    assert len(group_units(files)) == 3


def test_sidecar_takes_capture_time_of_its_photo_and_travels_with_it() -> None:
    """A sidecar with a much later mtime is batched with its photo, not at its own time."""
    files = [
        shot(1, "x/A.NEF", T0_MS),
        sidecar(2, "x/A.NEF.xmp", mtime_ms=T0_MS + 30 * HOUR_MS),
        shot(3, "x/B.NEF", T0_MS + 10 * HOUR_MS),
    ]
    batches = plan_batches(
        files, shoot_gap_s=7200, max_files=100, max_bytes=10**9, tiny_shoot_files=0
    )
    assert [paths(b) for b in batches] == [["x/B.NEF"], ["x/A.NEF", "x/A.NEF.xmp"]]


def test_unit_is_never_split_even_when_larger_than_max_bytes() -> None:
    """A RAW+JPEG pair over max_bytes forms its own batch instead of being separated."""
    files = [
        shot(1, "d/P1.NEF", T0_MS, size=900),
        shot(2, "d/P1.JPG", T0_MS, size=300),
        shot(3, "d/P2.NEF", T0_MS + 1000, size=100),
        shot(4, "d/P3.NEF", T0_MS + 2000, size=100),
    ]
    batches = plan_batches(
        files, shoot_gap_s=7200, max_files=10, max_bytes=1000, tiny_shoot_files=0
    )
    assert [paths(b) for b in batches] == [["d/P1.JPG", "d/P1.NEF"], ["d/P2.NEF", "d/P3.NEF"]]
    assert batches[0].bytes == 1200


def test_shoot_boundary_by_gap() -> None:
    """A pause longer than shoot_gap_s starts a new shoot; a shorter one does not."""
    files = [
        shot(1, "s/1.JPG", T0_MS),
        shot(2, "s/2.JPG", T0_MS + HOUR_MS),
        shot(3, "s/3.JPG", T0_MS + 4 * HOUR_MS),
    ]
    shoots = group_shoots(group_units(files), shoot_gap_s=2 * 3600)
    assert [[f.id for u in s.units for f in u.files] for s in shoots] == [[1, 2], [3]]
    assert shoots[0].start_unix_ms == T0_MS
    assert shoots[0].end_unix_ms == T0_MS + HOUR_MS


def test_shoot_boundary_by_camera_change_but_unknown_camera_joins() -> None:
    """A different camera starts a shoot; a file without EXIF camera joins its neighbour."""
    files = [
        shot(1, "s/1.JPG", T0_MS),
        QueuedFile(2, "s/2.JPG", mtime_ns=(T0_MS + 1000) * 1_000_000),
        shot(3, "s/3.JPG", T0_MS + 2000),
        shot(4, "s/4.JPG", T0_MS + 3000, camera=CANON),
    ]
    shoots = group_shoots(group_units(files), shoot_gap_s=7200)
    assert [[f.id for u in s.units for f in u.files] for s in shoots] == [[1, 2, 3], [4]]
    assert [s.camera for s in shoots] == ["NIKON Z6", "Canon R5"]


def test_most_recent_shoot_first_chronological_within() -> None:
    """Batches come newest shoot first; files inside a shoot stay in capture order."""
    old = [shot(i, f"old/{i}.JPG", T0_MS + i * 1000) for i in range(1, 7)]
    new = [shot(i, f"new/{i}.JPG", T0_MS + 24 * HOUR_MS + i * 1000) for i in range(11, 17)]
    batches = plan_batches([*reversed(new), *old], shoot_gap_s=7200, max_files=4, max_bytes=10**9)
    assert [paths(b) for b in batches] == [
        ["new/11.JPG", "new/12.JPG", "new/13.JPG", "new/14.JPG"],
        ["new/15.JPG", "new/16.JPG"],
        ["old/1.JPG", "old/2.JPG", "old/3.JPG", "old/4.JPG"],
        ["old/5.JPG", "old/6.JPG"],
    ]
    assert batches[0].camera == "NIKON Z6"
    assert batches[2].shoot_start_unix_ms == T0_MS + 1000


def test_tiny_shoots_are_merged_up_to_limits() -> None:
    """Consecutive shoots below tiny_shoot_files share a batch until max_files is reached."""
    files = [shot(i, f"t/{i}.JPG", T0_MS + i * 10 * HOUR_MS) for i in range(5)]
    batches = plan_batches(
        files, shoot_gap_s=7200, max_files=3, max_bytes=10**9, tiny_shoot_files=5
    )
    assert [paths(b) for b in batches] == [
        ["t/4.JPG", "t/3.JPG", "t/2.JPG"],
        ["t/1.JPG", "t/0.JPG"],
    ]


def test_big_shoot_is_not_mixed_with_tiny_neighbours() -> None:
    """A shoot with at least tiny_shoot_files files never shares a batch with another shoot."""
    big = [shot(i, f"big/{i}.JPG", T0_MS + i * 1000) for i in range(5)]
    tiny = [shot(10, "tiny/a.JPG", T0_MS + 10 * HOUR_MS)]
    batches = plan_batches([*big, *tiny], shoot_gap_s=7200, max_files=50, max_bytes=10**9)
    assert [len(b.files) for b in batches] == [1, 5]


def test_mtime_fallback_when_exif_has_no_capture_time() -> None:
    """Files without EXIF capture time are ordered and split into shoots by mtime."""
    files = [
        QueuedFile(1, "m/a.png", mtime_ns=T0_MS * 1_000_000),
        QueuedFile(2, "m/b.png", mtime_ns=(T0_MS + 5 * HOUR_MS) * 1_000_000),
    ]
    batches = plan_batches(
        files, shoot_gap_s=7200, max_files=10, max_bytes=10**9, tiny_shoot_files=0
    )
    assert [paths(b) for b in batches] == [["m/b.png"], ["m/a.png"]]
    assert batches[1].shoot_start_unix_ms == T0_MS
    assert batches[1].camera == ""


def test_adaptive_batch_size_grows_with_bandwidth_and_stays_in_bounds() -> None:
    """max_bytes follows throughput x target_seconds, clamped to [min_bytes, max_bytes]."""
    sizer = AdaptiveBatchSize(
        initial_bytes=64 << 20, min_bytes=4 << 20, max_bytes=1 << 30, target_seconds=10.0
    )
    assert sizer.max_bytes == 64 << 20
    sizer.observe(10 << 20, 1.0)  # 10 MiB/s -> 100 MiB per 10 s
    assert sizer.max_bytes == 100 << 20
    for _ in range(30):
        sizer.observe(1 << 30, 1.0)
    assert sizer.max_bytes == 1 << 30
    for _ in range(30):
        sizer.observe(1000, 10.0)
    assert sizer.max_bytes == 4 << 20
    before = sizer.max_bytes
    sizer.observe(1 << 30, 0.0)
    assert sizer.max_bytes == before


def test_adaptive_batch_size_smooths_a_single_outlier() -> None:
    """One fast sample moves the estimate up but not all the way (EWMA)."""
    sizer = AdaptiveBatchSize(min_bytes=1, max_bytes=1 << 40, target_seconds=1.0)
    sizer.observe(1_000_000, 1.0)
    sizer.observe(100_000_000, 1.0)
    assert 1_000_000 < sizer.max_bytes < 100_000_000


def test_statedb_pending_files_plan_directly() -> None:
    """The queue's PendingFile satisfies the batcher's protocol and plans like any file."""
    pending = [
        PendingFile(
            id=i,
            watch_name="card",
            relative_path=f"DCIM/P{i}.JPG",
            source_path=Path(f"/card/DCIM/P{i}.JPG"),
            sha256=ContentHash("0" * 64),
            size=100,
            mtime_ns=(T0_MS + i * 1000) * 1_000_000,
            exif=ExifSummary(),
            base_sha256="",
            incomplete=False,
            attempts=0,
            enqueued_unix_ms=T0_MS,
        )
        for i in range(3)
    ]
    batches: list[Batch[PendingFile]] = plan_batches(
        pending, shoot_gap_s=7200, max_files=2, max_bytes=10**6, tiny_shoot_files=0
    )
    assert [[f.id for f in b.files] for b in batches] == [[0, 1], [2]]


STEMS = ["A", "a", "B", "C", "dsc_1"]
NAMES = [
    f"{stem}{ext}"
    for stem in STEMS
    for ext in (".NEF", ".jpg", ".JPG", ".xmp", ".NEF.xmp", ".heic")
]


@st.composite
def queued_files(draw: st.DrawFn) -> list[QueuedFile]:
    specs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["w1", "w2"]),
                st.sampled_from(["", "d1/", "d2/"]),
                st.sampled_from(NAMES),
                st.integers(0, 5000),
                st.integers(0, 48),
                st.sampled_from([NIKON, CANON, ExifSummary()]),
            ),
            max_size=40,
            unique_by=lambda t: (t[0], t[1] + t[2]),
        )
    )
    files = []
    for i, (watch, folder, name, size, hour, camera) in enumerate(specs):
        at_ms = T0_MS + hour * HOUR_MS
        exif = ExifSummary(at_ms if camera.camera else 0, camera.camera_make, camera.camera_model)
        files.append(QueuedFile(i, folder + name, size, watch, at_ms * 1_000_000, exif))
    return files


@settings(max_examples=200, deadline=None)
@given(
    files=queued_files(),
    max_files=st.integers(1, 8),
    max_bytes=st.integers(1, 12_000),
    tiny=st.integers(0, 6),
)
def test_plan_invariants(
    files: list[QueuedFile], max_files: int, max_bytes: int, tiny: int
) -> None:
    """Every file is in exactly one batch, units are never split, limits hold unless a batch
    is a single oversized unit, and a shoot that is not tiny shares no batch."""
    batches = plan_batches(
        files, shoot_gap_s=7200, max_files=max_files, max_bytes=max_bytes, tiny_shoot_files=tiny
    )
    planned = [f.id for b in batches for f in b.files]
    assert sorted(planned) == sorted(f.id for f in files)
    batch_of = {f.id: i for i, b in enumerate(batches) for f in b.files}
    units = group_units(files)
    for unit in units:
        assert len({batch_of[f.id] for f in unit.files}) == 1
    for b in batches:
        assert b.files
        assert b.bytes == sum(f.size for f in b.files)
        within = len(b.files) <= max_files and b.bytes <= max_bytes
        single_unit = any(set(u.files) == set(b.files) for u in units)
        assert within or single_unit
    for shoot in group_shoots(units, shoot_gap_s=7200):
        ids = {f.id for u in shoot.units for f in u.files}
        if shoot.file_count >= tiny:
            for i in {batch_of[fid] for fid in ids}:
                assert {f.id for f in batches[i].files} <= ids
