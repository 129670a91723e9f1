"""A small EXIF summary of a photo (time, camera, lens, GPS, size), never failing on bad files."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, cast

from photonic.media.images import image_dimensions, is_raw
from photonic.models import ExifSummary

log = logging.getLogger(__name__)

EXIF_READ_BUDGET_BYTES = 16 << 20
"""exifread follows sizes and offsets found in the file; past this budget it sees end-of-file."""
EXIF_MAX_SINGLE_READ_BYTES = 1 << 20
"""A tag claiming gigabytes of text gets at most this much (only 128 characters are kept)."""
EXIF_READ_BUDGET_CALLS = 300_000
"""A last resort against value-by-value loops over bogus counts: past it, reading fails."""
MAX_DIMENSION_PX = 1_000_000
MIN_YEAR, MAX_YEAR = 1900, 2200
_MAX_TEXT_CHARS = 128

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATETIME_RE = re.compile(r"^(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")

# (time tag, its UTC offset tag, its sub-second tag), in order of preference.
_TIME_TAGS = (
    ("EXIF DateTimeOriginal", "EXIF OffsetTimeOriginal", "EXIF SubSecTimeOriginal"),
    ("EXIF DateTimeDigitized", "EXIF OffsetTimeDigitized", "EXIF SubSecTimeDigitized"),
    ("Image DateTime", "EXIF OffsetTime", "EXIF SubSecTime"),
)

TagValues = Mapping[str, str | int]
"""exifread's tag names ("EXIF DateTimeOriginal") -> the text of a text tag as exifread gives
it, or the first value of a number tag when that is an integer. Of a GPS tag only its presence
counts. Both EXIF readers (exifread, photonic.media.jpeg_exif) produce this for summarise()."""

TEXT_TAGS = ("Image Make", "Image Model", "EXIF LensModel", *(k for t in _TIME_TAGS for k in t))
NUMBER_TAGS = (
    "Image Orientation",
    "Image ImageWidth",
    "Image ImageLength",
    "EXIF ExifImageWidth",
    "EXIF ExifImageLength",
)
PRESENCE_TAGS = ("GPS GPSLatitude", "GPS GPSLongitude")


class ReadBudgetExceeded(Exception):
    """exifread asked for more reads than any real photo needs."""


class BoundedExifReader:
    """A read-only file view for exifread that caps what a hostile file can make it read.

    Oversized reads are shortened and an exhausted byte budget looks like end-of-file, which
    exifread tolerates, so the tags read before the limit still make a partial summary.
    """

    def __init__(
        self,
        handle: BinaryIO,
        *,
        budget_bytes: int = EXIF_READ_BUDGET_BYTES,
        max_read_bytes: int = EXIF_MAX_SINGLE_READ_BYTES,
        budget_calls: int = EXIF_READ_BUDGET_CALLS,
    ) -> None:
        self._handle = handle
        self._bytes_left = budget_bytes
        self._max_read_bytes = max_read_bytes
        self._calls_left = budget_calls

    @property
    def bytes_left(self) -> int:
        return self._bytes_left

    def read(self, size: int | None = -1) -> bytes:
        self._calls_left -= 1
        if self._calls_left < 0:
            raise ReadBudgetExceeded("exifread exceeded its read-call budget")
        limit = min(self._bytes_left, self._max_read_bytes)
        if size is not None and 0 <= size < limit:
            limit = size
        data = self._handle.read(limit)
        self._bytes_left -= len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()


def read_exif_summary(path: Path, head: bytes | memoryview | None = None, *,
                      source: BinaryIO | None = None) -> ExifSummary:
    """Summarise a photo's EXIF; any field that cannot be read is left empty, nothing raises.

    A capture time without an offset tag is taken as UTC. The camera's real zone is unknown,
    and any fixed choice works for grouping shoots, but it must be the same on every machine:
    the local zone of whichever agent reads the file would split or merge shoots differently
    per agent and shift them with daylight saving.

    head, the file's first bytes when the caller has already read them (the hasher has), lets a
    JPEG be summarised from memory by photonic.media.jpeg_exif, which gives exactly what
    exifread and Pillow would or declines; only then are the file, exifread and Pillow used.

    source, the file already open, is read instead of opening path (whose name still decides
    the format): the agent reads the very file it hashed, not whatever path leads to now.
    """
    if head is not None and not is_raw(path):
        # Imported here: jpeg_exif builds on this module's summarise(), so it cannot be
        # imported while this module is still loading.
        from photonic.media.jpeg_exif import summary_from_jpeg_head

        try:
            summary = summary_from_jpeg_head(head)
        except Exception as exc:  # a bug there must cost speed, never the summary
            log.warning("fast exif reader failed path=%s error=%r", path, exc)
            summary = None
        if summary is not None:
            return summary
    tags: dict[str, Any] = {}
    try:
        tags = read_tags(path if source is None else source)
    except Exception as exc:  # exifread's failure modes on hostile input are open-ended
        log.debug("exif unreadable path=%s error=%r", path, exc)
    try:
        # RAW files often open in Pillow as TIFF and report their embedded preview's size.
        if source is not None:
            source.seek(0)
        pixel_size = (0, 0) if is_raw(path) else image_dimensions(path if source is None
                                                                   else source)
        return summarise(plain_tags(tags), pixel_size)
    except Exception as exc:
        log.debug("exif summary failed path=%s error=%r", path, exc)
        return ExifSummary()


def read_tags(path: Path | BinaryIO) -> dict[str, Any]:
    """exifread's tags of a file (a path, or a file open for reading), its reads bounded by
    BoundedExifReader; raises whatever exifread raises on a hostile file."""
    if not isinstance(path, Path):
        path.seek(0)
        return _process(path)
    with open(path, "rb") as handle:
        return _process(handle)


def _process(handle: BinaryIO) -> dict[str, Any]:
    import exifread  # here, not at the top: agents that find nothing new never pay for it

    reader = cast(BinaryIO, BoundedExifReader(handle))
    tags = exifread.process_file(reader, details=False, extract_thumbnail=False,
                                 truncate_tags=True)
    return dict(tags)


def plain_tags(tags: dict[str, Any]) -> TagValues:
    """exifread's IfdTag objects reduced to what summarise() reads."""
    plain: dict[str, str | int] = {}
    for key in TEXT_TAGS:
        if key in tags:
            tag = tags[key]
            values = getattr(tag, "values", tag)
            plain[key] = values if isinstance(values, str) else str(getattr(tag, "printable", ""))
    for key in NUMBER_TAGS:
        values = getattr(tags.get(key), "values", None)
        if isinstance(values, list) and values and isinstance(values[0], int):
            plain[key] = values[0]
    for key in PRESENCE_TAGS:
        if key in tags:
            plain[key] = 1
    return plain


def summarise(tags: TagValues, pixel_size: tuple[int, int]) -> ExifSummary:
    """The summary of a photo from its tag values and the size its image header gives.

    pixel_size is (0, 0) when the header gave none (or for RAW files, whose header describes
    a preview); the EXIF dimension tags stand in then.
    """
    width, height = pixel_size
    if not (width and height):
        width = _first_int(tags, "EXIF ExifImageWidth") or _first_int(tags, "Image ImageWidth")
        height = _first_int(tags, "EXIF ExifImageLength") or _first_int(tags, "Image ImageLength")
    if not (0 < width <= MAX_DIMENSION_PX and 0 < height <= MAX_DIMENSION_PX):
        width, height = 0, 0
    return ExifSummary(
        capture_time_unix_ms=_capture_time_ms(tags),
        camera_make=_text(tags, "Image Make"),
        camera_model=_text(tags, "Image Model"),
        lens_model=_text(tags, "EXIF LensModel"),
        has_gps=all(key in tags for key in PRESENCE_TAGS),
        width=width,
        height=height,
        orientation=_orientation(tags),
    )


def _text(tags: TagValues, key: str) -> str:
    value = tags.get(key)
    if not isinstance(value, str):
        return ""
    return value.replace("\x00", "").strip()[:_MAX_TEXT_CHARS]


def _first_int(tags: TagValues, key: str) -> int:
    value = tags.get(key)
    return value if isinstance(value, int) else 0


def _orientation(tags: TagValues) -> int:
    value = _first_int(tags, "Image Orientation")
    return value if 1 <= value <= 8 else 0


def _capture_time_ms(tags: TagValues) -> int:
    for time_key, offset_key, subsec_key in _TIME_TAGS:
        moment = _parse_datetime(_text(tags, time_key))
        if moment is None:
            continue  # absent or absurd: a lesser tag may still be right
        moment = moment.replace(tzinfo=_parse_offset(_text(tags, offset_key)))
        elapsed = moment - _EPOCH + timedelta(milliseconds=_subsec_ms(_text(tags, subsec_key)))
        return elapsed // timedelta(milliseconds=1)
    return 0


def _parse_datetime(text: str) -> datetime | None:
    match = _DATETIME_RE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    if not MIN_YEAR <= year <= MAX_YEAR:
        return None
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def _parse_offset(text: str) -> timezone:
    match = _OFFSET_RE.match(text)
    if match is None:
        return UTC
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta >= timedelta(hours=24):
        return UTC
    return timezone(-delta if sign == "-" else delta)


def _subsec_ms(text: str) -> int:
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()):
        return 0
    return int((digits + "00")[:3])
