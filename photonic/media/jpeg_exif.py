"""A JPEG's EXIF summary from bytes already in memory: exactly what exifread and Pillow give
(photonic.media.exif), or None whenever those bytes cannot settle it.

The agent hashed each new JPEG, then opened it twice more in exifread (pure Python) and
Pillow: almost half its Python time on a first sync. From the hash pass's first block this
answers in microseconds and declines anything unusual, leaving it to the slow path.

"Exactly" means emulating both readers (exifread 3.5, Pillow 13), quirks included, not the
specs: exifread finds the EXIF segment with its own walk (giving up at DQT or 4000 bytes on);
Pillow reads markers up to SOS (not SOF), takes DHP for a frame header and fails on TEM. The
answer is None wherever Pillow would fail, exifread would read outside the APP1 segment or
print a text tag as bytes or a list, or its read budget (exif.BoundedExifReader) could run
out. Every loop is bounded by the input's length or a constant; no input makes this raise.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from photonic.media import exif
from photonic.media.exif import TagValues
from photonic.models import ExifSummary

PILLOW_MAX_PIXELS = 2 * 89_478_485
"""Pillow refuses to open a larger image: 2 * PIL.Image.MAX_IMAGE_PIXELS, its default."""
MAX_IFD_ENTRIES, MAX_TOTAL_ENTRIES, MAX_IFDS, MAX_CHAINED_IFDS = 1000, 4000, 24, 8
"""Far beyond what cameras write; a file past them goes to exifread."""
_CALL_LIMIT = exif.EXIF_READ_BUDGET_CALLS // 2  # margins: exifread's reads are estimated
_BYTE_LIMIT = exif.EXIF_READ_BUDGET_BYTES // 2  # from above

_JPEG_MAGIC = b"\xff\xd8\xff"
_JFIF_LIKE = (b"JFIF", b"JFXX", b"OLYM", b"Phot")  # APP segments exifread skips first
_EXIFREAD_SEARCH_BYTES = 4000  # exifread reads this much past them to find the EXIF segment
_EXIFREAD_MAX_SKIPS = 8
_FRAME_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                            0xCE, 0xCF, 0xDE})  # Pillow's SOF handler also takes DHP (DE)
_LENGTHLESS = frozenset({0xC8, *range(0xD0, 0xDA), *range(0xF0, 0xFE)})  # Pillow reads no length
_UNSAFE_DPI_TYPES = frozenset({1, 2, 6, 7})  # an XResolution Pillow may index out of range

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_INT_CODES = {1: "B", 3: "H", 4: "I", 6: "b", 7: "B", 8: "h", 9: "i", 13: "I"}
_ASCII, _SHORT, _LONG, _RATIOS, _FLOATS = 2, 3, 4, (5, 10), (11, 12)
_STRUCTS = {order: (struct.Struct(order + "HHII"),  # byte order -> (IFD entry, integer values)
                    {kind: struct.Struct(order + code) for kind, code in _INT_CODES.items()})
            for order in "<>"}
_BE16 = struct.Struct(">H")
_IGNORED_TAGS = frozenset({0x02BC, 0x927C, 0x9286})  # exifread skips these (details=False)
_GPS_POINTER, _INTEROP_POINTER, _EXIF_POINTER = 0x8825, 0xA005, 0x8769
_RESOLUTION_UNIT, _X_RESOLUTION = 0x0128, 0x011A

# tag -> exifread's name for it, per IFD; the EXIF and GPS IFDs hang off IFD0 ("Image").
_IMAGE_TAGS = {tag: f"Image {name}" for tag, name in {
    0x010F: "Make", 0x0110: "Model", 0x0132: "DateTime", 0x0112: "Orientation",
    0x0100: "ImageWidth", 0x0101: "ImageLength", _EXIF_POINTER: "ExifOffset"}.items()}
_EXIF_TAGS = {tag: f"EXIF {name}" for tag, name in {
    0x9003: "DateTimeOriginal", 0x9004: "DateTimeDigitized", 0x9010: "OffsetTime",
    0x9011: "OffsetTimeOriginal", 0x9012: "OffsetTimeDigitized", 0x9290: "SubSecTime",
    0x9291: "SubSecTimeOriginal", 0x9292: "SubSecTimeDigitized", 0xA434: "LensModel",
    0xA002: "ExifImageWidth", 0xA003: "ExifImageLength"}.items()}
_GPS_TAGS = {0x0002: "GPS GPSLatitude", 0x0004: "GPS GPSLongitude"}
_NO_TAGS: dict[int, str] = {}
_GPS_NAMES, _TEXT_NAMES = frozenset(_GPS_TAGS.values()), frozenset(exif.TEXT_TAGS)


class _Unsure(Exception):
    """These bytes cannot settle what exifread or Pillow would do: the caller asks them."""


def summary_from_jpeg_head(head: bytes | memoryview) -> ExifSummary | None:
    """The summary read_exif_summary(path) gives for a JPEG starting with head, or None.

    head must be the file's first bytes (all of it or a prefix); a memoryview is copied once.
    """
    data = head if isinstance(head, bytes) else bytes(head)
    try:
        frame = _PillowHeader(data)
        app1 = _exifread_app1(data)
        walk = None if app1 is None else _TiffWalk(data, app1)
        # Pillow reads a dpi from the first Exif APP1's IFD0 when JFIF gave none, and an odd
        # XResolution there makes its open() fail; that IFD0 must be the one walked here.
        if frame.exif_at is not None and not frame.jfif_dpi and (
            walk is None or frame.exif_at != app1 or walk.dpi_may_fail
        ):
            raise _Unsure
        tags: TagValues = {} if walk is None else walk.values()
        return exif.summarise(tags, frame.size)
    except _Unsure:
        return None


def _be16(data: bytes, at: int) -> int:
    if at + 2 > len(data):
        raise _Unsure
    return int(_BE16.unpack_from(data, at)[0])


def _after_next_ff(data: bytes, pos: int) -> int:
    found = data.find(b"\xff", pos)  # Pillow skips non-0xFF bytes one at a time
    if found < 0:
        raise _Unsure
    return found + 1


class _PillowHeader:
    """Pillow's JPEG header parse (JpegImagePlugin._open) up to SOS: the size it reports, the
    first Exif APP1 and whether JFIF gave a dpi. Raises _Unsure wherever Pillow would fail."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._icc: list[bytes] = []
        self.exif_at: int | None = None
        self.jfif_dpi = False
        self.size = (0, 0)
        if not data.startswith(_JPEG_MAGIC):
            raise _Unsure
        self._walk(3)  # Pillow has read FF D8 FF and takes that last FF for a marker's start
        width, height = self.size
        if not (width and height) or width * height > PILLOW_MAX_PIXELS:
            raise _Unsure  # no frame header, an empty frame, or a "decompression bomb"

    def _walk(self, pos: int) -> None:
        data = self._data
        while True:
            if pos >= len(data):
                raise _Unsure
            code = data[pos]
            pos += 1
            if code == 0xFF:
                continue  # fill byte
            if code == 0x00 or code in _LENGTHLESS:
                pos = _after_next_ff(data, pos)
                continue
            if code < 0xC0:
                raise _Unsure  # TEM and reserved markers: Pillow's "no marker found"
            start = pos + 2
            end = max(start, pos + _be16(data, pos))  # Pillow reads length - 2 bytes, or none
            if end > len(data):
                raise _Unsure
            if code in _FRAME_MARKERS:
                self._frame(start, end)
            elif code == 0xDB:
                self._quantization_tables(start, end)
            elif 0xE0 <= code <= 0xEF:
                self._app(code, pos - 2, start, end)
            elif code == 0xDA:
                return
            pos = _after_next_ff(data, end)

    def _frame(self, start: int, end: int) -> None:
        data, length = self._data, end - start
        if length < 6 or data[start] != 8 or data[start + 5] not in (1, 3, 4) or (length - 6) % 3:
            raise _Unsure  # not 8-bit, an odd layer count, or a cut component list
        if self._icc and len(min(self._icc)) <= 13:  # Pillow reads the chunk count at byte 13
            raise _Unsure
        self._icc.clear()
        self.size = (_be16(data, start + 3), _be16(data, start + 1))

    def _quantization_tables(self, start: int, end: int) -> None:
        while start < end:
            start += 65 if self._data[start] < 16 else 129
            if start > end:
                raise _Unsure  # Pillow: "bad quantization table marker"

    def _app(self, code: int, marker_at: int, start: int, end: int) -> None:
        data = self._data
        if code == 0xE0 and data.startswith(b"JFIF", start, end):
            if end - start < 7:
                raise _Unsure  # Pillow's JFIF version read fails
            self.jfif_dpi |= end - start >= 12 and data[start + 7] in (1, 2)
        elif code == 0xE1 and data.startswith(b"Exif\x00\x00", start, end):
            self.exif_at = marker_at if self.exif_at is None else self.exif_at
        elif code == 0xE2 and data.startswith(b"ICC_PROFILE\x00", start, end):
            self._icc.append(data[start : min(start + 14, end)])
        elif code == 0xED and data.startswith(b"Photoshop 3.0\x00", start, end):
            self._photoshop(start, end)
        elif code == 0xEE and data.startswith(b"Adobe", start, end) and end - start < 7:
            raise _Unsure  # Pillow's Adobe version read fails

    def _photoshop(self, start: int, end: int) -> None:
        """Pillow walks the 8BIM resources; struct.error ends it quietly, IndexError fails it."""
        data, length, at = self._data, end - start, 14  # offsets from start: Pillow aligns them
        while data.startswith(b"8BIM", start + at, end) and at + 6 <= length:
            resource, at = _be16(data, start + at + 4), at + 6
            if at >= length:
                raise _Unsure  # the name length is missing
            at += 1 + data[start + at]
            at += at & 1
            size = int.from_bytes(data[start + at : start + at + 4], "big")
            if at + 4 > length or (resource == 0x03ED and min(size, length - at - 4) < 14):
                return  # a cut size field or a short ResolutionInfo
            at += 4 + size
            at += at & 1


def _exifread_app1(data: bytes) -> int | None:
    """Where exifread (core.jpeg.find_jpeg_exif) finds the EXIF APP1 marker; None: nowhere."""
    if data[4:12] in (b"ftypheic", b"ftypavif", b"ftypmif1"):
        raise _Unsure  # exifread would take the file for HEIC
    base = 2
    for _ in range(_EXIFREAD_MAX_SKIPS + 1):
        if base + 8 > len(data):
            raise _Unsure
        if data[base] != 0xFF or data[base + 4 : base + 8] not in _JFIF_LIKE:
            break
        length = _be16(data, base + 2)
        if length < 8:
            raise _Unsure  # exifread would read a negative count: to the end of the file
        base += 2 + length
    else:
        raise _Unsure
    limit = min(base + _EXIFREAD_SEARCH_BYTES, exif.EXIF_MAX_SINGLE_READ_BYTES)
    while True:  # base grows by at least 2 per step, toward limit
        if base + 8 > min(limit, len(data)):
            if len(data) >= limit:
                return None  # past the bytes exifread searches: it finds no EXIF
            raise _Unsure
        marker = data[base : base + 2]
        if marker == b"\xff\xe1" and data[base + 4 : base + 8] == b"Exif":
            return base
        if marker == b"\xff\xdb":
            if data[base + 2] == 0xFF:
                raise _Unsure  # exifread would look for Ducky/Adobe/Exif tags inside a DQT
            return None
        base += _be16(data, base + 2) + 2


class _TiffWalk:
    """exifread's walk over the TIFF block of one APP1 segment (ExifHeader.list_ifd, dump_ifd):
    which entry it records under which name, and an upper bound on the reads it makes."""

    def __init__(self, data: bytes, app1: int) -> None:
        self._data, self._base = data, app1 + 10  # offsets count from the TIFF header
        self._size = app1 + 2 + _be16(data, app1 + 2) - self._base  # to the segment's end
        order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[self._base : self._base + 4])
        if order is None or self._size < 8 or self._base + self._size > len(data):
            raise _Unsure
        self._entry, self._ints = _STRUCTS[order]
        self._found: dict[str, tuple[int, int, int]] = {}  # name -> (type, count, value at)
        self._entries = self._ifds = self._calls = self._bytes = 0
        self._resolution_unit = self._odd_x_resolution = False
        self.dpi_may_fail = True  # until IFD0 is known
        self._walk()

    def values(self) -> TagValues:
        tags: dict[str, str | int] = {}
        for name, (kind, count, at) in self._found.items():
            if name in _GPS_NAMES:
                tags[name] = 1
            elif name in _TEXT_NAMES:
                tags[name] = self._text(kind, count, at)
            elif kind in _INT_CODES and 0 < count < 1000:  # exifread keeps no values past 999
                tags[name] = self._int(kind, at)
        return tags

    def _walk(self) -> None:
        chain: list[int] = []
        ifd = self._int(_LONG, 4)
        while ifd and ifd not in chain:
            chain.append(ifd)
            if len(chain) > MAX_CHAINED_IFDS:
                raise _Unsure
            following = self._int(_LONG, ifd + 2 + 12 * self._int(_SHORT, ifd))
            ifd = 0 if following == ifd else following
        self._calls += 2 * len(chain)
        for index, offset in enumerate(chain):
            self._dump(offset, _IMAGE_TAGS if index == 0 else _NO_TAGS, follow=True)
        self.dpi_may_fail = not chain or (self._resolution_unit and self._odd_x_resolution)
        pointer = self._found.pop("Image ExifOffset", None)
        if pointer is not None:
            self._dump(self._pointer(*pointer), _EXIF_TAGS, follow=True)
        if self._calls > _CALL_LIMIT or self._bytes + 8 * self._calls > _BYTE_LIMIT:
            raise _Unsure

    def _dump(self, ifd: int, wanted: Mapping[int, str], *, follow: bool) -> None:
        count, tiff_end = self._int(_SHORT, ifd), self._size
        start, end = ifd + 2, ifd + 2 + 12 * count
        self._ifds += 1
        self._entries += count
        self._calls += 1 + 5 * count  # per entry: tag, type, count, pointer, text
        if (count > MAX_IFD_ENTRIES or self._entries > MAX_TOTAL_ENTRIES
                or self._ifds > MAX_IFDS or end > tiff_end):
            raise _Unsure
        ifd0 = wanted is _IMAGE_TAGS
        base = self._base
        entries = self._entry.iter_unpack(memoryview(self._data)[base + start : base + end])
        for at, (tag, kind, count, pointer) in zip(range(start + 8, end, 12), entries, strict=True):
            size = _TYPE_SIZES.get(kind)
            if size is None or tag in _IGNORED_TAGS:
                continue  # exifread skips the entry: no value, no name
            if count * size > 4:
                at = pointer
            if kind == _ASCII:
                self._bytes += min(count, exif.EXIF_MAX_SINGLE_READ_BYTES)
            elif count < 1000:  # exifread reads each value (each half of a ratio) by itself
                self._calls += count << (kind in _RATIOS)
                if count == 1 and kind in _FLOATS and at + size > tiff_end:
                    raise _Unsure  # a short read here makes exifread fail the whole file
            if tag in wanted:
                self._found[wanted[tag]] = (kind, count, at)
            elif follow and tag in (_GPS_POINTER, _INTEROP_POINTER):
                tags = _GPS_TAGS if tag == _GPS_POINTER else _NO_TAGS
                self._dump(self._pointer(kind, count, at), tags, follow=False)
            if ifd0 and tag in (_RESOLUTION_UNIT, _X_RESOLUTION):
                self._resolution_unit |= tag == _RESOLUTION_UNIT
                self._odd_x_resolution |= tag == _X_RESOLUTION and kind in _UNSAFE_DPI_TYPES

    def _pointer(self, kind: int, count: int, at: int) -> int:
        offset = self._int(kind, at) if kind in _INT_CODES and 0 < count < 1000 else -1
        if offset < 0:
            raise _Unsure  # exifread ignores, or fails on, such a pointer: rare, so ask it
        return offset

    def _text(self, kind: int, count: int, at: int) -> str:
        if kind != _ASCII:
            raise _Unsure
        start = self._base + at
        end = self._data.find(0, start, min(start + count, self._base + self._size))
        if end < 0:
            if at + count > self._size:
                raise _Unsure  # the text runs past the segment
            end = start + count
        try:
            return self._data[start:end].decode()
        except UnicodeDecodeError:
            raise _Unsure from None

    def _int(self, kind: int, at: int) -> int:
        unpacker = self._ints[kind]
        if at + unpacker.size > self._size:
            raise _Unsure
        return int(unpacker.unpack_from(self._data, self._base + at)[0])

