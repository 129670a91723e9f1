"""Tests for photonic.media.images: photo kinds and the "is it fully written yet" check."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from photonic.media import images
from photonic.media.images import (
    PhotoKind,
    image_dimensions,
    is_photo,
    is_raw,
    is_sidecar,
    is_structurally_complete,
    photo_kind,
)
from tests.support.photos import (
    make_corrupt_jpeg,
    make_jpeg,
    make_png,
    make_raw_like,
    make_truncated_jpeg,
    make_xmp,
    write_slowly,
)


def test_complete_jpeg_is_complete(tmp_path: Path) -> None:
    """A fully written JPEG ends with its EOI marker."""
    assert is_structurally_complete(make_jpeg(tmp_path / "a.jpg", seed=1))


def test_truncated_jpeg_is_incomplete(tmp_path: Path) -> None:
    """A JPEG cut in half lacks EOI and is not complete."""
    assert not is_structurally_complete(make_truncated_jpeg(tmp_path / "a.jpg", seed=2))


@pytest.mark.parametrize("padding", [b"\x00" * 4096, b"\xff" * 512, b"\x00\xff" * 100])
def test_padded_jpeg_is_complete(tmp_path: Path, padding: bytes) -> None:
    """Zero or 0xFF padding after EOI, as some cameras write, still counts as complete."""
    data = make_jpeg(tmp_path / "a.jpg", seed=3).read_bytes()
    (tmp_path / "padded.jpg").write_bytes(data + padding)
    assert is_structurally_complete(tmp_path / "padded.jpg")


def test_padding_beyond_the_tail_window_is_incomplete(tmp_path: Path) -> None:
    """Padding far longer than cameras use hides the EOI and is not trusted as complete."""
    data = make_jpeg(tmp_path / "a.jpg", seed=4).read_bytes()
    (tmp_path / "odd.jpg").write_bytes(data + bytes(images.JPEG_MAX_PADDING_BYTES + 10))
    assert not is_structurally_complete(tmp_path / "odd.jpg")


def test_jpeg_is_judged_by_magic_not_suffix(tmp_path: Path) -> None:
    """A truncated JPEG named .bin is still incomplete; a non-JPEG named .jpg is not checked."""
    cut = make_truncated_jpeg(tmp_path / "a.jpg", seed=5).read_bytes()
    (tmp_path / "a.bin").write_bytes(cut)
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg at all")
    assert not is_structurally_complete(tmp_path / "a.bin")
    assert is_structurally_complete(tmp_path / "b.jpg")


def test_corrupt_jpeg_with_eoi_counts_as_complete(tmp_path: Path) -> None:
    """Structure only: garbage between SOI and EOI is complete; it will be stored as is."""
    assert is_structurally_complete(make_corrupt_jpeg(tmp_path / "a.jpg", seed=6))
    assert not is_structurally_complete(make_corrupt_jpeg(tmp_path / "b.jpg", seed=6, eoi=False))


def test_png_complete_and_truncated(tmp_path: Path) -> None:
    """A PNG is complete when it ends with the IEND chunk."""
    path = make_png(tmp_path / "a.png", seed=7)
    assert is_structurally_complete(path)
    (tmp_path / "cut.png").write_bytes(path.read_bytes()[:-20])
    assert not is_structurally_complete(tmp_path / "cut.png")


def test_zero_byte_and_other_formats_are_complete(tmp_path: Path) -> None:
    """Zero-byte files and formats without an end marker (RAW, XMP) count as complete."""
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert is_structurally_complete(tmp_path / "empty.jpg")
    assert is_structurally_complete(make_raw_like(tmp_path / "a.nef", seed=8, size_bytes=5000))
    assert is_structurally_complete(make_xmp(tmp_path / "a.xmp"))


def test_jpeg_shorter_than_the_tail_window(tmp_path: Path) -> None:
    """A tiny JPEG (smaller than the tail window) is judged correctly both ways."""
    (tmp_path / "tiny.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10\xff\xd9")
    (tmp_path / "tinycut.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10")
    assert is_structurally_complete(tmp_path / "tiny.jpg")
    assert not is_structurally_complete(tmp_path / "tinycut.jpg")


def test_check_reads_only_head_and_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a large file the check reads a few KB, never the whole file."""
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff\xd8\xff" + random.Random(9).randbytes(8 << 20) + b"\xff\xd9")
    read_sizes: list[int] = []
    real_open = open

    class CountingFile(io.BufferedReader):
        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            read_sizes.append(len(data))
            return data

    def counting_open(file: Path, mode: str = "r") -> io.BufferedReader:
        assert mode == "rb"
        return CountingFile(real_open(file, "rb", buffering=0))

    monkeypatch.setattr(images, "open", counting_open, raising=False)
    assert is_structurally_complete(path)
    assert 0 < sum(read_sizes) <= 2 * (images.JPEG_MAX_PADDING_BYTES + 64)


def test_file_being_written_becomes_complete(tmp_path: Path) -> None:
    """While a camera is writing a JPEG it is incomplete; after the last piece it is complete."""
    data = make_jpeg(tmp_path / "src.jpg", seed=10).read_bytes()
    path = tmp_path / "DSC_0100.JPG"
    states: list[bool] = []
    write_slowly(
        path,
        data,
        pieces=4,
        pause_s=0.0,
        sleep=lambda _: states.append(is_structurally_complete(path)),
    )
    states.append(is_structurally_complete(path))
    assert states == [False, False, False, True]
    assert path.read_bytes() == data


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    """A file that vanished is reported to the caller (the watcher), not called complete."""
    with pytest.raises(FileNotFoundError):
        is_structurally_complete(tmp_path / "gone.jpg")


@pytest.mark.parametrize(
    "name, kind",
    [
        ("a.NEF", PhotoKind.RAW),
        ("a.cr3", PhotoKind.RAW),
        ("a.dng", PhotoKind.RAW),
        ("a.JPG", PhotoKind.JPEG),
        ("a.jpeg", PhotoKind.JPEG),
        ("a.HEIC", PhotoKind.HEIC),
        ("a.heif", PhotoKind.HEIC),
        ("a.tif", PhotoKind.TIFF),
        ("a.png", PhotoKind.PNG),
        ("a.xmp", PhotoKind.SIDECAR),
        ("a.txt", None),
        ("noext", None),
    ],
)
def test_photo_kind_by_suffix(name: str, kind: PhotoKind | None) -> None:
    """Suffixes map to kinds case-insensitively; unknown suffixes are not photos."""
    path = Path(name)
    assert photo_kind(path) is kind
    assert is_raw(path) == (kind is PhotoKind.RAW)
    assert is_sidecar(path) == (kind is PhotoKind.SIDECAR)
    assert is_photo(path) == (kind not in (None, PhotoKind.SIDECAR))


def test_image_dimensions_from_header_or_zero(tmp_path: Path) -> None:
    """Pillow reads the size from the header; non-images give (0, 0)."""
    assert image_dimensions(make_jpeg(tmp_path / "a.jpg", seed=11, width=123, height=45)) == (
        123,
        45,
    )
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
    assert image_dimensions(tmp_path / "junk.jpg") == (0, 0)
