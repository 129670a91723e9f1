"""Thumbnails from photo bytes: upright, long edge as asked, from a RAW's largest embedded
preview (not its tiny thumbnail, not a stray marker in sensor data, not a lossless frame), a
clear UnsupportedMedia for anything that is not an image; and the EXIF details shown beside
a photo."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from photonic import errors
from photonic.media.exif_details import read_exif_details
from photonic.media.raw_preview import jpeg_span, largest_preview
from photonic.media.thumbnail import render_thumbnail
from tests.support.photos import make_corrupt_jpeg, make_jpeg, make_raw_like, make_truncated_jpeg
from tests.support.raws import flat_jpeg, make_cr3_like, make_nef_like


def thumb_of(path: Path, size: int = 256) -> Image.Image:
    with open(path, "rb") as f:
        data = render_thumbnail(f, size)
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image


def colour_at_centre(image: Image.Image) -> tuple[int, int, int]:
    rgb = image.convert("RGB")
    r, g, b = rgb.getpixel((rgb.width // 2, rgb.height // 2))  # type: ignore[misc]
    return int(r), int(g), int(b)


def test_a_jpeg_is_scaled_to_the_long_edge(tmp_path: Path) -> None:
    """A 640x480 photo gives 256x192 and 1024 never enlarges it."""
    photo = make_jpeg(tmp_path / "a.jpg", seed=1)
    assert thumb_of(photo).size == (256, 192)
    assert thumb_of(photo, 1024).size == (640, 480)


def test_exif_orientation_6_gives_rotated_dimensions(tmp_path: Path) -> None:
    """A landscape-stored photo tagged Orientation 6 (rotate 90° clockwise) comes out
    portrait, with the stored left edge on top."""
    image = Image.new("RGB", (400, 200), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 40, 200))  # the stored left edge is red
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    image.save(path, "JPEG", exif=exif, quality=95)
    thumb = thumb_of(path)
    assert thumb.size == (128, 256)
    r, _, b = thumb.convert("RGB").getpixel((64, 5))  # type: ignore[misc]
    assert r > 200 and b < 60


def test_a_nef_like_raw_gives_its_large_preview_turned_by_the_container(
        tmp_path: Path) -> None:
    """The SubIFD's 800x600 red preview is chosen over IFD0's 160x120 blue thumbnail and a
    stray start marker in the sensor bytes; IFD0's Orientation 6 turns it upright."""
    raw = make_nef_like(tmp_path / "DSC_0001.NEF", seed=3)
    preview = largest_preview(raw.read_bytes())
    assert preview is not None and (preview.span.width, preview.span.height) == (800, 600)
    assert preview.orientation == 6
    thumb = thumb_of(raw)
    assert thumb.size == (192, 256)
    r, g, b = colour_at_centre(thumb)
    assert r > 180 and g < 60 and b < 60


def test_a_cr3_like_file_is_scanned_for_its_preview(tmp_path: Path) -> None:
    """No IFDs to follow: the JPEG inside an ISO-BMFF box is found by scanning."""
    raw = make_cr3_like(tmp_path / "IMG_0001.CR3", seed=4)
    thumb = thumb_of(raw, 1024)
    assert thumb.size == (640, 480)
    r, g, _ = colour_at_centre(thumb)
    assert g > 150 and r < 80


def test_a_lossless_frame_and_a_cut_jpeg_are_not_previews() -> None:
    """SOF3 (a DNG's lossless raw data) and a JPEG without its EOI are skipped."""
    sof3 = (b"\xff\xd8\xff\xc3\x00\x0b\x08" + struct.pack(">HH", 4000, 6000) + b"\x01\x01\x11\x00"
            + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x12" * 600 + b"\xff\xd9")
    assert jpeg_span(sof3, 0) is None
    real = flat_jpeg(320, 240, (1, 2, 3))
    assert jpeg_span(real, 0) is not None
    assert jpeg_span(real[:-2], 0) is None
    assert largest_preview(b"\x00" * 10 + sof3 + real[: len(real) // 2]) is None


def test_a_raw_without_a_preview_is_unsupported(tmp_path: Path) -> None:
    """A TIFF-like RAW whose IFDs name no JPEG and whose bytes hold none: a clear error."""
    raw = make_raw_like(tmp_path / "x.NEF", seed=5, size_bytes=40_000)
    with pytest.raises(errors.UnsupportedMedia):
        thumb_of(raw)


@pytest.mark.parametrize("maker", ["corrupt", "truncated", "text", "empty"])
def test_what_is_not_an_image_is_unsupported_media(tmp_path: Path, maker: str) -> None:
    """Garbage after a JPEG header, a JPEG cut in half, a text file, an empty file: each is
    UnsupportedMedia (a 415 on the web), never another exception; no server path in it."""
    path = tmp_path / "bad.jpg"
    if maker == "corrupt":
        make_corrupt_jpeg(path, seed=6)
    elif maker == "truncated":
        make_truncated_jpeg(path, seed=6)
    elif maker == "text":
        path.write_text("root:x:0:0:root:/root:/bin/bash\n")
    else:
        path.write_bytes(b"")
    with pytest.raises(errors.UnsupportedMedia) as caught:
        thumb_of(path)
    assert str(tmp_path) not in str(caught.value)


def test_transparency_lands_on_white(tmp_path: Path) -> None:
    """A transparent PNG becomes a white JPEG, not a black one."""
    path = tmp_path / "clear.png"
    Image.new("RGBA", (50, 50), (0, 0, 0, 0)).save(path)
    assert min(colour_at_centre(thumb_of(path))) > 240


def test_exif_details_read_camera_exposure_iso_focal_length_and_time(tmp_path: Path) -> None:
    """The details a person reads: text, units, and the camera's own clock with its offset."""
    from datetime import datetime, timedelta, timezone

    taken = datetime(2024, 6, 1, 10, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    photo = make_jpeg(tmp_path / "a.jpg", seed=7, capture_time=taken, extra_exif_ifd={
        0x829A: IFDRational(1, 250), 0x8827: 400, 0x920A: IFDRational(35, 2),
        0xA434: "NIKKOR Z 24-70mm f/4 S"})
    with open(photo, "rb") as f:
        details = read_exif_details(f)
    assert details.camera == "Nikon Z 6"
    assert details.lens == "NIKKOR Z 24-70mm f/4 S"
    assert (details.exposure, details.iso, details.focal_length) == ("1/250 s", "400", "17.5 mm")
    assert details.taken == "2024-06-01 10:00:00 +02:00"


def test_exif_details_are_empty_strings_when_absent(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.new("RGB", (10, 10)).save(path)
    with open(path, "rb") as f:
        details = read_exif_details(f)
    assert (details.camera, details.lens, details.exposure, details.iso, details.focal_length,
            details.taken) == ("", "", "", "", "", "")
