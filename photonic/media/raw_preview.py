"""Finds the largest JPEG preview a RAW file carries, so a thumbnail of a NEF, CR2, ARW, DNG,
CR3, ORF or RW2 costs one small JPEG decode instead of a RAW developer.

TIFF-based RAWs name their previews in IFDs (JPEGInterchangeFormat, single JPEG strips,
Panasonic's JpgFromRaw); anything else (CR3's ISO-BMFF boxes, maker notes) is found by
scanning for JPEG start markers and walking each candidate's segments to its real end, which
steps over the small thumbnail nested inside a preview's EXIF. Only baseline and progressive
Huffman JPEGs count: lossless JPEG (the raw data of many DNGs) is not a preview Pillow can
decode. Every walk is bounded: IFDs visited, entries read, start markers tried."""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass

MAX_IFDS = 64
MAX_IFD_ENTRIES = 1000
MAX_SCANNED_STARTS = 256
MIN_PREVIEW_BYTES = 512

JPEG_SOI = b"\xff\xd8\xff"
DECODABLE_FRAMES = frozenset({0xC0, 0xC1, 0xC2})
"""SOF0/1/2: baseline, extended and progressive Huffman, what Pillow's JPEG decoder reads."""
_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})

_TIFF_MAGICS = {b"II*\x00": "<", b"MM\x00*": ">", b"IIRO": "<", b"IIRS": "<", b"IIU\x00": "<"}
"""TIFF, and the TIFF-like headers of Olympus ORF and Panasonic RW2."""
TAG_ORIENTATION = 0x0112
_TAG_COMPRESSION, _TAG_STRIP_OFFSETS = 0x0103, 0x0111
_TAG_JPEG_OFFSET, _TAG_JPEG_LENGTH = 0x0201, 0x0202
_TAG_SUB_IFDS = 0x014A
_TAG_RW2_JPEG = 0x002E
_JPEG_COMPRESSIONS = frozenset({6, 7})
_TYPE_SIZES = {3: 2, 4: 4, 13: 4}
"""SHORT, LONG and IFD: the field types that hold offsets and lengths."""

Bytes = bytes | mmap.mmap
"""The file's bytes: in memory, or mapped (a RAW is tens of megabytes)."""


@dataclass(frozen=True)
class JpegSpan:
    """One complete, decodable JPEG inside a larger file: bytes [start, end)."""

    start: int
    end: int
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class RawPreview:
    span: JpegSpan
    orientation: int
    """The container's EXIF orientation (IFD0), 0 when it has none: RAW previews are stored
    as the sensor saw them and rarely carry their own."""


def jpeg_span(data: Bytes, start: int) -> JpegSpan | None:
    """The JPEG that starts at `start`, walked marker by marker to its EOI; None when it is
    not one (a stray FFD8FF in sensor data), is truncated, or has no decodable frame."""
    limit = len(data)
    if data[start:start + 3] != JPEG_SOI:
        return None
    pos, width, height, frame = start + 2, 0, 0, 0
    while pos + 2 <= limit:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0xD9:
            ok = frame in DECODABLE_FRAMES and width > 0 and height > 0
            return JpegSpan(start, pos + 2, width, height) if ok else None
        elif marker in _STANDALONE:
            pos += 2
        else:
            if pos + 9 > limit:
                return None
            length = (data[pos + 2] << 8) | data[pos + 3]
            if length < 2:
                return None
            if marker in _FRAMES:
                frame = marker
                height = (data[pos + 5] << 8) | data[pos + 6]
                width = (data[pos + 7] << 8) | data[pos + 8]
            pos += 2 + length
            if marker == 0xDA:
                pos = _after_entropy_data(data, pos, limit)
    return None


def _after_entropy_data(data: Bytes, pos: int, limit: int) -> int:
    """The position of the first marker after a scan's entropy-coded bytes, where FF00 is a
    stuffed byte, FFD0..FFD7 are restart markers and FFFF is fill."""
    while True:
        pos = data.find(b"\xff", pos, limit)
        if pos < 0 or pos + 1 >= limit:
            return limit
        nxt = data[pos + 1]
        if nxt == 0xFF:
            pos += 1
        elif nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
            pos += 2
        else:
            return pos


def largest_preview(data: Bytes) -> RawPreview | None:
    """The largest (by pixels) decodable JPEG embedded in data, from the TIFF IFDs when it
    has them, else from a bounded scan; None when it carries none."""
    orientation, offered = _tiff_candidates(data)
    spans = [s for s in (jpeg_span(data, at) for at in offered) if s is not None]
    if not spans:
        spans = list(_scanned(data))
    spans = [s for s in spans if s.end - s.start >= MIN_PREVIEW_BYTES]
    if not spans:
        return None
    best = max(spans, key=lambda s: (s.pixels, s.end - s.start))
    return RawPreview(best, orientation)


def _scanned(data: Bytes) -> Iterator[JpegSpan]:
    pos, tried = 0, 0
    while tried < MAX_SCANNED_STARTS:
        at = data.find(JPEG_SOI, pos)
        if at < 0:
            return
        tried += 1
        span = jpeg_span(data, at)
        if span is None:
            pos = at + 1
            continue
        yield span
        pos = span.end


def _tiff_candidates(data: Bytes) -> tuple[int, list[int]]:
    """(IFD0's orientation, offsets of every JPEG an IFD names); (0, []) when data is not
    TIFF-like."""
    order = _TIFF_MAGICS.get(data[:4], "")
    if not order or len(data) < 8:
        return 0, []
    walk = _IfdWalk(data, order)
    walk.visit(struct.unpack_from(order + "I", data, 4)[0])
    return walk.orientation, walk.found


class _IfdWalk:
    """IFD0, the IFDs chained after it and their SubIFDs, each at most once."""

    def __init__(self, data: Bytes, order: str) -> None:
        self._data = data
        self._order = order
        self._seen: set[int] = set()
        self.orientation = 0
        self.found: list[int] = []

    def visit(self, ifd0: int) -> None:
        pending = [ifd0]
        while pending and len(self._seen) < MAX_IFDS:
            at = pending.pop()
            if at in self._seen or not 8 <= at <= len(self._data) - 2:
                continue
            self._seen.add(at)
            tags, following = self._read(at)
            if at == ifd0:
                self.orientation = _first(tags.get(TAG_ORIENTATION))
            self._collect(tags)
            pending += tags.get(_TAG_SUB_IFDS, [])
            if following:
                pending.append(following)

    def _read(self, at: int) -> tuple[dict[int, list[int]], int]:
        data, o = self._data, self._order
        count = min(struct.unpack_from(o + "H", data, at)[0], MAX_IFD_ENTRIES)
        tags: dict[int, list[int]] = {}
        for i in range(count):
            entry = at + 2 + 12 * i
            if entry + 12 > len(data):
                break
            tag, kind, n = struct.unpack_from(o + "HHI", data, entry)
            tags[tag] = self._values(kind, n, entry + 8)
        end = at + 2 + 12 * count
        following = struct.unpack_from(o + "I", data, end)[0] if end + 4 <= len(data) else 0
        return tags, following

    def _values(self, kind: int, n: int, field: int) -> list[int]:
        """Integer values of a SHORT/LONG/IFD field (at most 64 of them); of an UNDEFINED
        field (RW2's embedded JPEG) where its bytes start."""
        if kind == 7:
            return [field if n <= 4 else struct.unpack_from(self._order + "I", self._data,
                                                            field)[0]]
        size = _TYPE_SIZES.get(kind, 0)
        if not size or n == 0:
            return []
        n = min(n, 64)
        where = field if size * n <= 4 else struct.unpack_from(
            self._order + "I", self._data, field)[0]
        if where + size * n > len(self._data):
            return []
        code = "H" if kind == 3 else "I"
        return list(struct.unpack_from(f"{self._order}{n}{code}", self._data, where))

    def _collect(self, tags: dict[int, list[int]]) -> None:
        if tags.get(_TAG_JPEG_OFFSET) and tags.get(_TAG_JPEG_LENGTH):
            self.found.append(tags[_TAG_JPEG_OFFSET][0])
        strips = tags.get(_TAG_STRIP_OFFSETS)
        if _first(tags.get(_TAG_COMPRESSION)) in _JPEG_COMPRESSIONS and strips:
            self.found.append(strips[0])  # a multi-strip image fails jpeg_span's walk
        if tags.get(_TAG_RW2_JPEG):
            self.found.append(tags[_TAG_RW2_JPEG][0])


def _first(values: list[int] | None) -> int:
    return values[0] if values else 0
