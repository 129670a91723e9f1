"""Deterministic test photos (seeded): JPEGs with real EXIF, RAW-like TIFFs, sidecars, broken files.

The same seed and arguments always give the same bytes (with the same Pillow build), so unit
tests, e2e tests, the chaos suite and the benchmarks can all name their fixtures by seed.
This module frames files (EXIF, TIFF containers, truncation, slow writes); the pixels inside
them come from tests.support.pixels.
"""

from __future__ import annotations

import io
import os
import random
import struct
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from tests.support.pixels import jpeg_bytes, smooth_scene

EXIF_IFD_POINTER = 0x8769
GPS_IFD_POINTER = 0x8825
TAG_MAKE, TAG_MODEL, TAG_DATETIME = 0x010F, 0x0110, 0x0132
TAG_DATETIME_ORIGINAL, TAG_DATETIME_DIGITIZED = 0x9003, 0x9004
TAG_OFFSET_TIME_ORIGINAL = 0x9011
TAG_JPEG_OFFSET, TAG_JPEG_LENGTH = 0x0201, 0x0202
EXIF_TIME_FORMAT = "%Y:%m:%d %H:%M:%S"


def _open_ended(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def _gps_ifd(lat: float, lon: float) -> dict[int, object]:
    def dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
        value = abs(value)
        degrees = int(value)
        minutes = int((value - degrees) * 60)
        seconds = Fraction((value - degrees - minutes / 60) * 3600).limit_denominator(10_000)
        return (
            IFDRational(degrees, 1),
            IFDRational(minutes, 1),
            IFDRational(seconds.numerator, seconds.denominator),
        )

    return {
        0: b"\x02\x03\x00\x00",
        1: "N" if lat >= 0 else "S",
        2: dms(lat),
        3: "E" if lon >= 0 else "W",
        4: dms(lon),
    }


def _utc_offset_text(moment: datetime) -> str | None:
    offset = moment.utcoffset()
    if offset is None:
        return None
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def build_exif(
    *,
    capture_time: datetime | None,
    make: str,
    model: str,
    gps: tuple[float, float] | None = None,
    extra_exif: Mapping[int, object] | None = None,
    extra_exif_ifd: Mapping[int, object] | None = None,
) -> Image.Exif:
    """EXIF as a camera writes it. extra_* set raw tags (IFD0 / Exif IFD), e.g. absurd values."""
    exif = Image.Exif()
    exif[TAG_MAKE] = make
    exif[TAG_MODEL] = model
    exif_ifd = exif.get_ifd(EXIF_IFD_POINTER)
    if capture_time is not None:
        stamp = capture_time.strftime(EXIF_TIME_FORMAT)
        exif[TAG_DATETIME] = stamp
        exif_ifd[TAG_DATETIME_ORIGINAL] = stamp
        exif_ifd[TAG_DATETIME_DIGITIZED] = stamp
        offset = _utc_offset_text(capture_time)
        if offset is not None:
            exif_ifd[TAG_OFFSET_TIME_ORIGINAL] = offset
    for tag, value in (extra_exif or {}).items():
        exif[tag] = value
    exif_ifd.update(extra_exif_ifd or {})
    if gps is not None:
        exif.get_ifd(GPS_IFD_POINTER).update(_gps_ifd(*gps))
    return exif




def make_jpeg(
    path: Path,
    *,
    seed: int,
    width: int = 640,
    height: int = 480,
    quality: int = 90,
    capture_time: datetime | None = None,
    make: str = "Nikon",
    model: str = "Z 6",
    gps: tuple[float, float] | None = None,
    target_bytes: int | None = None,
    extra_exif: Mapping[int, object] | None = None,
    extra_exif_ifd: Mapping[int, object] | None = None,
) -> Path:
    """Write a photo-like JPEG with real EXIF.

    capture_time None writes no date tags. A naive capture_time is written as is (readers treat
    it as UTC); an aware one also gets OffsetTimeOriginal. gps is (latitude, longitude).
    """
    exif = build_exif(
        capture_time=capture_time,
        make=make,
        model=model,
        gps=gps,
        extra_exif=extra_exif,
        extra_exif_ifd=extra_exif_ifd,
    )
    data = jpeg_bytes(
        seed=seed, width=width, height=height, quality=quality, exif=exif, target_bytes=target_bytes
    )
    return _open_ended(path, data)


def make_png(path: Path, *, seed: int, width: int = 320, height: int = 240) -> Path:
    """A PNG with no EXIF at all."""
    buffer = io.BytesIO()
    smooth_scene(random.Random(seed), width, height).save(buffer, "PNG")
    return _open_ended(path, buffer.getvalue())


def make_tiff(path: Path, *, seed: int, width: int = 640, height: int = 480) -> Path:
    """An uncompressed TIFF of smooth content: the kind of file LZ4 shrinks well."""
    buffer = io.BytesIO()
    smooth_scene(random.Random(seed), width, height).save(buffer, "TIFF")
    return _open_ended(path, buffer.getvalue())


_TIFF_ASCII, _TIFF_LONG = 2, 4
_DEFAULT_CAPTURE_TIME = datetime(2024, 6, 1, 10, 0, 0)

_TiffEntry = tuple[int, int, int, bytes]  # (tag, type, count, value bytes)


def _ascii_entry(tag: int, text: str) -> _TiffEntry:
    value = text.encode("ascii") + b"\x00"
    return tag, _TIFF_ASCII, len(value), value


def _long_entry(tag: int, value: int) -> _TiffEntry:
    return tag, _TIFF_LONG, 1, struct.pack("<I", value)


def _ifd_size(entry_count: int) -> int:
    return 2 + 12 * entry_count + 4


def _tiff_header(ifd0: list[_TiffEntry], exif_ifd: list[_TiffEntry]) -> bytes:
    """A little-endian TIFF: header, IFD0 (pointing at the Exif IFD), Exif IFD, then values."""
    exif_offset = 8 + _ifd_size(len(ifd0) + 1)
    data_offset = exif_offset + _ifd_size(len(exif_ifd))
    data = bytearray()

    def field(value: bytes) -> bytes:
        if len(value) <= 4:
            return value.ljust(4, b"\x00")
        offset = data_offset + len(data)
        data.extend(value + b"\x00" * (len(value) % 2))  # values start on word boundaries
        return struct.pack("<I", offset)

    def ifd(entries: list[_TiffEntry]) -> bytes:
        body = struct.pack("<H", len(entries))
        for tag, kind, count, value in sorted(entries):
            body += struct.pack("<HHI", tag, kind, count) + field(value)
        return body + struct.pack("<I", 0)

    first = ifd([*ifd0, _long_entry(EXIF_IFD_POINTER, exif_offset)])
    second = ifd(exif_ifd)
    return b"II*\x00" + struct.pack("<I", 8) + first + second + bytes(data)


def make_raw_like(
    path: Path,
    *,
    seed: int,
    size_bytes: int,
    capture_time: datetime | None = _DEFAULT_CAPTURE_TIME,
    make: str = "NIKON CORPORATION",
    model: str = "NIKON Z 6",
    width: int = 6048,
    height: int = 4024,
    preview: bytes | None = None,
) -> Path:
    """A TIFF-based RAW stand-in (name it .NEF/.CR3): real EXIF IFDs, then incompressible bytes.

    exifread reads Make, Model, DateTimeOriginal and the dimensions from it, as from a NEF.
    With preview (a JPEG), the file carries it right after the header, pointed at by IFD0's
    JPEGInterchangeFormat tags, as NEF, CR3 and ARW files carry a full-size preview: the
    benchmark's shoot set needs a RAW's realistic mix of compressible-looking JPEG data and
    sensor noise.
    """
    ifd0 = [
        _long_entry(0x00FE, 0),
        _long_entry(0x0100, width),
        _long_entry(0x0101, height),
        _ascii_entry(TAG_MAKE, make),
        _ascii_entry(TAG_MODEL, model),
    ]
    exif_ifd: list[_TiffEntry] = []
    if capture_time is not None:
        stamp = capture_time.strftime(EXIF_TIME_FORMAT)
        ifd0.append(_ascii_entry(TAG_DATETIME, stamp))
        exif_ifd.append(_ascii_entry(TAG_DATETIME_ORIGINAL, stamp))
        offset = _utc_offset_text(capture_time)
        if offset is not None:
            exif_ifd.append(_ascii_entry(TAG_OFFSET_TIME_ORIGINAL, offset))
    header = _tiff_header(ifd0, exif_ifd)
    if preview is not None:
        # The header's length does not depend on the offset's value: build it, then again
        # with the preview's real offset.
        def with_preview(offset: int) -> bytes:
            entries = [*ifd0, _long_entry(TAG_JPEG_OFFSET, offset),
                       _long_entry(TAG_JPEG_LENGTH, len(preview))]
            return _tiff_header(entries, exif_ifd)

        header = with_preview(len(with_preview(0))) + preview
    if size_bytes < len(header):
        raise ValueError(f"size_bytes must be at least {len(header)} for the header and preview")
    payload = random.Random(seed).randbytes(size_bytes - len(header))
    return _open_ended(path, header + payload)


def make_exif_bomb(path: Path, *, seed: int, size_bytes: int = 4 << 20) -> Path:
    """A TIFF with real Make/Model but absurd counts: 4 GB of ImageDescription, a 2**31-value
    MakerNote and UserComment, and an ImageWidth of 4 billion.

    A naive EXIF reader loops over every claimed value or reads the whole file as one string.
    """
    huge, pointer = 0xFFFFFFFF, struct.pack("<I", 256)
    ifd0 = [
        _ascii_entry(TAG_MAKE, "Nikon"),
        _ascii_entry(TAG_MODEL, "Bomb"),
        (0x010E, _TIFF_ASCII, huge, pointer),  # ImageDescription
        _long_entry(0x0100, huge),
        _long_entry(0x0101, huge),
    ]
    exif_ifd: list[_TiffEntry] = [
        (0x927C, 7, 1 << 31, pointer),  # MakerNote, UNDEFINED
        (0x9286, 7, 1 << 31, pointer),  # UserComment, UNDEFINED
    ]
    header = _tiff_header(ifd0, exif_ifd)
    payload = random.Random(seed).randbytes(max(0, size_bytes - len(header)))
    return _open_ended(path, header + payload)


def make_heic_like(path: Path, *, seed: int, size_bytes: int = 4096) -> Path:
    """An ISO-BMFF file that starts like a HEIC (ftyp box) but carries no EXIF."""
    ftyp = struct.pack(">I", 24) + b"ftypheic" + struct.pack(">I", 0) + b"mif1heic"
    body_size = max(8, size_bytes - len(ftyp))
    mdat = struct.pack(">I", body_size) + b"mdat" + random.Random(seed).randbytes(body_size - 8)
    return _open_ended(path, ftyp + mdat)


def make_mp4_like(path: Path, *, seed: int, size_bytes: int = 4096) -> Path:
    """An ISO-BMFF file shaped like a camera's MP4 clip (ftyp, mdat of noise, a small moov)."""
    ftyp = struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 512) + b"isomavc1"
    moov = struct.pack(">I", 16) + b"moov" + struct.pack(">I", 8) + b"free"
    body_size = max(8, size_bytes - len(ftyp) - len(moov))
    mdat = struct.pack(">I", body_size) + b"mdat" + random.Random(seed).randbytes(body_size - 8)
    return _open_ended(path, ftyp + mdat + moov)


def make_xmp(path: Path, *, rating: int = 3, size_bytes: int = 0, seed: int = 0) -> Path:
    """A small XMP sidecar as Lightroom or darktable would write next to a RAW.

    size_bytes (a Lightroom sidecar with develop settings is 5-20 KB) adds seeded develop
    settings and then pads the packet with whitespace, as XMP writers do so that it can be
    edited in place.
    """
    settings = ""
    if size_bytes:
        rng = random.Random(seed)
        lines: list[str] = []
        written = 0
        while written < size_bytes * 3 // 4:
            lines.append(f'    crs:Setting{len(lines):03d}="{rng.uniform(-100, 100):+.2f}"\n')
            written += len(lines[-1])
        settings = '    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"\n' + "".join(lines)
    head = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        + settings
        + f'    xmp:Rating="{rating}"/>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
    )
    tail = '<?xpacket end="w"?>\n'
    padding = max(0, size_bytes - len(head.encode("utf-8")) - len(tail))
    return _open_ended(path, (head + " " * padding + tail).encode("utf-8"))


def make_corrupt_jpeg(path: Path, *, seed: int, size_bytes: int = 20_000, eoi: bool = True) -> Path:
    """A JFIF header followed by garbage; with eoi it still ends with FFD9, so it looks complete.

    That is the interesting case: structurally finished, undecodable, and it must still be
    stored byte for byte.
    """
    header = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    tail = b"\xff\xd9" if eoi else b""
    garbage = random.Random(seed).randbytes(max(0, size_bytes - len(header) - len(tail)))
    if not eoi:
        garbage = garbage.rstrip(b"\x00\xff\xd9") + b"\x42"  # never ends like an EOI marker
    return _open_ended(path, header + garbage + tail)


def make_truncated_jpeg(path: Path, *, seed: int, width: int = 640, height: int = 480) -> Path:
    """A real JPEG (with EXIF) cut in half: no EOI marker, as left by a pulled card."""
    exif = build_exif(capture_time=_DEFAULT_CAPTURE_TIME, make="Nikon", model="Z 6")
    data = jpeg_bytes(seed=seed, width=width, height=height, exif=exif)
    cut = len(data) // 2
    while data[:cut].rstrip(b"\x00\xff").endswith(b"\xff\xd9"):
        cut -= 1
    return _open_ended(path, data[:cut])


def write_slowly(
    path: Path,
    data: bytes,
    pieces: int,
    pause_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Write data in pieces, flushed and fsynced, pausing between them: a camera writing a file.

    The pause simulates the writer and is not used for synchronisation.
    """
    if pieces < 1:
        raise ValueError(f"pieces must be at least 1, got {pieces}")
    step = max(1, -(-len(data) // pieces))
    with open(path, "wb") as handle:
        for start in range(0, max(1, len(data)), step):
            if start:
                sleep(pause_s)
            handle.write(data[start : start + step])
            handle.flush()
            os.fsync(handle.fileno())
