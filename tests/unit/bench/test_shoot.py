"""The benchmark's shoot set: a working photographer's day, planned and generated as issue 16
describes it (RAW+JPEG pairs, a sidecar per RAW, phone HEICs and MP4 clips)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench import datagen
from bench.datagen import FileKind, SetSpec
from photonic.media.exif import read_exif_summary
from photonic.media.raw_preview import largest_preview

_MB = 1_000_000


def test_full_shoot_plan_has_the_issues_mix_and_sizes() -> None:
    """150 RAWs of 30-50 MB, their 8-14 MB JPEGs and 5-20 KB sidecars, 20 clips; ~8-10 GB."""
    spec = datagen.standard_sets(quick=False)["shoot"]
    planned = datagen.plan_shoot(spec, 11)
    kinds = Counter(f.kind for f in planned)
    assert kinds[FileKind.RAW_PREVIEW] == kinds[FileKind.JPEG] == kinds[FileKind.XMP] == 150
    assert kinds[FileKind.HEIC] + kinds[FileKind.VIDEO] == 20
    assert kinds[FileKind.HEIC] and kinds[FileKind.VIDEO]
    for f in planned:
        low, high = {
            FileKind.RAW_PREVIEW: (30 * _MB, 50 * _MB), FileKind.JPEG: (8 * _MB, 14 * _MB),
            FileKind.XMP: (5_000, 20_000), FileKind.HEIC: (2 * _MB, 80 * _MB),
            FileKind.VIDEO: (2 * _MB, 80 * _MB),
        }[f.kind]
        assert low <= f.size_bytes <= high, f
    assert 7e9 < sum(f.size_bytes for f in planned) < 11e9
    assert len({f.relative_path for f in planned}) == len(planned)
    assert len({f.capture_time.date() for f in planned}) == 1
    assert planned == datagen.plan_shoot(spec, 11)
    assert [f.seed for f in planned] != [f.seed for f in datagen.plan_shoot(spec, 12)]


def test_generated_shoot_files_are_what_their_names_say(tmp_path: Path) -> None:
    """A one-frame shoot on disk: the RAW's EXIF and full-size preview read as a NEF's do, the
    JPEG is a camera JPEG, the sidecar an XMP packet of its planned size, the clips ISO-BMFF."""
    spec = SetSpec("shoot", FileKind.SHOOT, 1, 2 * _MB, 3 * _MB, 600, 400)
    made = datagen.ensure_set(spec, seed=4, cache_dir=tmp_path, procs=1)
    planned = {f.relative_path: f for f in datagen.plan_shoot(spec, 4, jpeg_bytes_per_pixel=1)}
    assert {rel for rel, _ in made.files} == set(planned)
    for rel, size in made.files:
        data = (made.root / rel).read_bytes()
        kind = planned[rel].kind
        if kind is FileKind.RAW_PREVIEW:
            assert size == planned[rel].size_bytes
            summary = read_exif_summary(made.root / rel)
            assert (summary.camera_make, summary.width) == ("NIKON CORPORATION", 600)
            preview = largest_preview(data)
            assert preview is not None
            assert (preview.span.width, preview.span.height) == (600, 400)
        elif kind is FileKind.JPEG:
            assert data[:3] == b"\xff\xd8\xff" and data.rstrip(b"\x00").endswith(b"\xff\xd9")
        elif kind is FileKind.XMP:
            assert size == planned[rel].size_bytes
            assert data.startswith(b"<?xpacket") and b"crs:" in data
        else:
            assert size == planned[rel].size_bytes
            assert data[4:8] == b"ftyp"
