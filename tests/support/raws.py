"""RAW-like files with embedded JPEG previews, laid out as cameras do: a NEF-like TIFF (a small
thumbnail named by IFD0, the large preview by a SubIFD, then sensor bytes that happen to hold
a stray JPEG start marker) and a CR3-like ISO-BMFF file (no IFDs: the preview is found by
scanning). Each preview is one flat colour so a test can tell which one a thumbnail came from."""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path

from PIL import Image

_SHORT, _LONG, _ASCII = 3, 4, 2


def flat_jpeg(width: int, height: int, colour: tuple[int, int, int],
              orientation: int = 0) -> bytes:
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=85, exif=exif)
    return out.getvalue()


def _ifd(entries: list[tuple[int, int, int, bytes]], at: int, data_at: int
         ) -> tuple[bytes, bytes]:
    """(IFD bytes at `at`, its out-of-line values at data_at)."""
    body, values = struct.pack("<H", len(entries)), b""
    for tag, kind, count, value in sorted(entries):
        if len(value) <= 4:
            field = value.ljust(4, b"\x00")
        else:
            field = struct.pack("<I", data_at + len(values))
            values += value + b"\x00" * (len(value) % 2)
        body += struct.pack("<HHI", tag, kind, count) + field
    return body + struct.pack("<I", 0), values


def _long(tag: int, value: int) -> tuple[int, int, int, bytes]:
    return tag, _LONG, 1, struct.pack("<I", value)


def make_nef_like(path: Path, *, seed: int, orientation: int = 6,
                  preview_size: tuple[int, int] = (800, 600),
                  preview_colour: tuple[int, int, int] = (220, 20, 20)) -> Path:
    """IFD0 (Make, Model, Orientation, a 160x120 blue thumbnail, SubIFDs) and a SubIFD naming
    the large preview (its own EXIF without orientation, as a NEF's), then sensor bytes."""
    thumb = flat_jpeg(160, 120, (20, 20, 220))
    preview = flat_jpeg(*preview_size, preview_colour)
    sensor = random.Random(seed).randbytes(64_000)
    sensor = sensor[:1000] + b"\xff\xd8\xff\xc0\x00\x11" + sensor[1000:]  # a stray SOI
    make, model = b"NIKON CORPORATION\x00", b"NIKON Z 6\x00"
    # Layout: header 8 | IFD0 at 8 (+values) | SubIFD | thumbnail | preview | sensor.
    ifd0_at, ifd0_entries = 8, 7
    ifd0_len = 2 + 12 * ifd0_entries + 4
    ifd0_values_len = len(make) + len(make) % 2 + len(model) + len(model) % 2
    sub_at = ifd0_at + ifd0_len + ifd0_values_len
    sub_len = 2 + 12 * 3 + 4
    thumb_at = sub_at + sub_len
    preview_at = thumb_at + len(thumb)
    ifd0, values0 = _ifd([
        (0x010F, _ASCII, len(make), make), (0x0110, _ASCII, len(model), model),
        (0x0112, _SHORT, 1, struct.pack("<H", orientation)),
        _long(0x0201, thumb_at), _long(0x0202, len(thumb)),
        _long(0x014A, sub_at), _long(0x0100, 6048)], ifd0_at, ifd0_at + ifd0_len)
    sub, _ = _ifd([_long(0x00FE, 1), _long(0x0201, preview_at), _long(0x0202, len(preview))],
                  sub_at, sub_at + sub_len)
    data = b"II*\x00" + struct.pack("<I", ifd0_at) + ifd0 + values0 + sub + thumb + preview
    path.write_bytes(data + sensor)
    return path


def make_cr3_like(path: Path, *, seed: int, preview_size: tuple[int, int] = (640, 480),
                  preview_colour: tuple[int, int, int] = (20, 200, 20)) -> Path:
    """An ISO-BMFF file (ftyp crx) whose only image is a JPEG inside an opaque box."""
    ftyp = struct.pack(">I", 24) + b"ftypcrx " + struct.pack(">I", 1) + b"crx isom"
    rng = random.Random(seed)
    preview = flat_jpeg(*preview_size, preview_colour)
    box = struct.pack(">I", 8 + 100 + len(preview)) + b"uuid" + rng.randbytes(100) + preview
    path.write_bytes(ftyp + box + rng.randbytes(32_000))
    return path
