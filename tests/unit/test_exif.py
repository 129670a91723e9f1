"""Tests for photonic.media.exif: the EXIF summary, on good photos and on hostile files."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from photonic.media.exif import BoundedExifReader, read_exif_summary
from photonic.models import ExifSummary
from tests.support.photos import (
    make_corrupt_jpeg,
    make_exif_bomb,
    make_heic_like,
    make_jpeg,
    make_png,
    make_raw_like,
    make_tiff,
    make_truncated_jpeg,
)

TAG_ORIENTATION, TAG_IMAGE_DESCRIPTION = 0x0112, 0x010E
TAG_USER_COMMENT, TAG_LENS_MODEL, TAG_SUBSEC_ORIGINAL = 0x9286, 0xA434, 0x9291


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_jpeg_with_exif_gives_time_camera_gps_and_size(tmp_path: Path) -> None:
    """A camera JPEG yields capture time (with its offset applied), make, model, GPS and size."""
    shot = datetime(2024, 5, 1, 12, 34, 56, tzinfo=timezone(timedelta(hours=2)))
    path = make_jpeg(
        tmp_path / "DSC_0001.JPG",
        seed=1,
        width=320,
        height=200,
        capture_time=shot,
        make="Nikon",
        model="Z 6",
        gps=(52.37, 4.89),
        extra_exif={TAG_ORIENTATION: 6},
        extra_exif_ifd={TAG_LENS_MODEL: "NIKKOR Z 24-70mm f/4 S", TAG_SUBSEC_ORIGINAL: "25"},
    )
    assert read_exif_summary(path) == ExifSummary(
        capture_time_unix_ms=_ms(shot) + 250,
        camera_make="Nikon",
        camera_model="Z 6",
        lens_model="NIKKOR Z 24-70mm f/4 S",
        has_gps=True,
        width=320,
        height=200,
        orientation=6,
    )


def test_naive_capture_time_is_taken_as_utc(tmp_path: Path) -> None:
    """Without OffsetTimeOriginal the wall-clock time is read as UTC on every machine."""
    path = make_jpeg(tmp_path / "a.jpg", seed=2, capture_time=datetime(2023, 1, 2, 3, 4, 5))
    summary = read_exif_summary(path)
    assert summary.capture_time_unix_ms == _ms(datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert not summary.has_gps


def test_jpeg_without_date_has_no_capture_time(tmp_path: Path) -> None:
    """A photo without date tags keeps capture time 0, so callers fall back to mtime."""
    summary = read_exif_summary(make_jpeg(tmp_path / "a.jpg", seed=3, capture_time=None))
    assert summary.capture_time_unix_ms == 0
    assert summary.camera == "Nikon Z 6"


def test_absurd_date_and_huge_text_fields_are_survived(tmp_path: Path) -> None:
    """A zero date gives time 0 while a 60 KB UserComment does not break the rest."""
    path = make_jpeg(
        tmp_path / "odd.jpg",
        seed=4,
        make="Canon",
        model="EOS R5",
        extra_exif={TAG_IMAGE_DESCRIPTION: "D" * 3_000},
        extra_exif_ifd={
            0x9003: "0000:00:00 00:00:00",
            TAG_USER_COMMENT: b"ASCII\x00\x00\x00" + b"C" * 60_000,
        },
    )
    summary = read_exif_summary(path)
    assert summary.capture_time_unix_ms == 0
    assert (summary.camera_make, summary.camera_model) == ("Canon", "EOS R5")
    assert (summary.width, summary.height) == (640, 480)


@pytest.mark.parametrize(
    "stamp", ["1850:01:01 00:00:00", "2500:01:01 00:00:00", "2024:13:45 99:00:00"]
)
def test_out_of_range_dates_give_time_zero(tmp_path: Path, stamp: str) -> None:
    """Years before 1900 or after 2200, and impossible dates, are not capture times."""
    path = make_jpeg(tmp_path / "a.jpg", seed=5, extra_exif_ifd={0x9003: stamp})
    assert read_exif_summary(path).capture_time_unix_ms == 0


def test_absurd_original_date_falls_back_to_datetime(tmp_path: Path) -> None:
    """When DateTimeOriginal is garbage, the plain DateTime tag still dates the photo."""
    path = make_jpeg(
        tmp_path / "a.jpg",
        seed=6,
        extra_exif={0x0132: "2022:07:08 09:10:11"},
        extra_exif_ifd={0x9003: "0000:00:00 00:00:00"},
    )
    expected = _ms(datetime(2022, 7, 8, 9, 10, 11, tzinfo=UTC))
    assert read_exif_summary(path).capture_time_unix_ms == expected


def test_raw_like_file_gives_camera_time_and_dimensions(tmp_path: Path) -> None:
    """A TIFF-based RAW (NEF) is read by exifread: make, model, time and EXIF dimensions."""
    shot = datetime(2021, 3, 4, 5, 6, 7)
    path = make_raw_like(
        tmp_path / "DSC_0002.NEF",
        seed=7,
        size_bytes=200_000,
        capture_time=shot,
        width=6000,
        height=4000,
    )
    summary = read_exif_summary(path)
    assert summary.capture_time_unix_ms == _ms(shot.replace(tzinfo=UTC))
    assert summary.camera == "NIKON CORPORATION NIKON Z 6"
    assert (summary.width, summary.height) == (6000, 4000)


def test_png_without_exif_gives_only_dimensions(tmp_path: Path) -> None:
    """A PNG has no EXIF: empty summary except the size from its header."""
    summary = read_exif_summary(make_png(tmp_path / "a.png", seed=8, width=300, height=100))
    assert summary == ExifSummary(width=300, height=100)


def test_tiff_without_exif_gives_only_dimensions(tmp_path: Path) -> None:
    """An uncompressed TIFF with no camera tags still reports its size."""
    summary = read_exif_summary(make_tiff(tmp_path / "a.tif", seed=9, width=200, height=150))
    assert summary == ExifSummary(width=200, height=150)


def test_truncated_jpeg_still_gives_its_exif(tmp_path: Path) -> None:
    """EXIF sits at the start of a JPEG, so a half-written file still yields it."""
    summary = read_exif_summary(make_truncated_jpeg(tmp_path / "cut.jpg", seed=10))
    assert summary.camera == "Nikon Z 6"
    assert summary.capture_time_unix_ms > 0


@pytest.mark.parametrize(
    "name, writer",
    [
        ("zero.jpg", lambda p: p.write_bytes(b"")),
        ("random.jpg", lambda p: p.write_bytes(random.Random(1).randbytes(50_000))),
        ("random.nef", lambda p: p.write_bytes(random.Random(2).randbytes(50_000))),
        ("corrupt.jpg", lambda p: make_corrupt_jpeg(p, seed=11)),
        ("photo.heic", lambda p: make_heic_like(p, seed=12)),
        ("unknown.cr3", lambda p: p.write_bytes(b"\x00\x00\x00\x18ftypcrx " + bytes(100))),
        ("tiff-head-only.tif", lambda p: p.write_bytes(b"II*\x00\xff\xff\xff\x7f")),
        ("jpeg-head-only.jpg", lambda p: p.write_bytes(b"\xff\xd8\xff\xe1\xff\xffExif\x00\x00")),
    ],
)
def test_unreadable_files_give_an_empty_summary(tmp_path: Path, name: str, writer: object) -> None:
    """Zero-byte, random, corrupt, HEIC-without-EXIF and unknown files never raise."""
    path = tmp_path / name
    writer(path)  # type: ignore[operator]
    assert read_exif_summary(path) == ExifSummary()


def test_missing_file_gives_an_empty_summary(tmp_path: Path) -> None:
    """Even a file that vanished before reading gives an empty summary, not an exception."""
    assert read_exif_summary(tmp_path / "gone.jpg") == ExifSummary()


def test_exif_bomb_is_read_partially_and_boundedly(tmp_path: Path) -> None:
    """Tags claiming gigabytes or 2**31 values are skipped; Make/Model still come through."""
    summary = read_exif_summary(make_exif_bomb(tmp_path / "bomb.nef", seed=13))
    assert summary == ExifSummary(camera_make="Nikon", camera_model="Bomb")


def test_bounded_reader_caps_single_reads_and_total_bytes() -> None:
    """Oversized reads are shortened, and an exhausted budget reads as end-of-file."""
    reader = BoundedExifReader(io.BytesIO(bytes(10_000)), budget_bytes=5_000, max_read_bytes=3_000)
    assert len(reader.read(1 << 30)) == 3_000
    assert len(reader.read()) == 2_000
    assert reader.read(10) == b""
    assert reader.bytes_left == 0
