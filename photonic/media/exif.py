"""A small EXIF summary of a photo (time, camera, lens, GPS, size), never failing on bad files."""

from __future__ import annotations

import logging
import re
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


def read_exif_summary(path: Path) -> ExifSummary:
    """Summarise a photo's EXIF; any field that cannot be read is left empty, nothing raises.

    A capture time without an offset tag is taken as UTC. The camera's real zone is unknown,
    and any fixed choice works for grouping shoots, but it must be the same on every machine:
    the local zone of whichever agent reads the file would split or merge shoots differently
    per agent and shift them with daylight saving.
    """
    tags: dict[str, Any] = {}
    try:
        tags = _read_tags(path)
    except Exception as exc:  # exifread's failure modes on hostile input are open-ended
        log.debug("exif unreadable path=%s error=%r", path, exc)
    try:
        return _summarise(path, tags)
    except Exception as exc:
        log.debug("exif summary failed path=%s error=%r", path, exc)
        return ExifSummary()


def _read_tags(path: Path) -> dict[str, Any]:
    import exifread  # here, not at the top: agents that find nothing new never pay for it

    with open(path, "rb") as handle:
        reader = cast(BinaryIO, BoundedExifReader(handle))
        tags = exifread.process_file(
            reader, details=False, extract_thumbnail=False, truncate_tags=True
        )
    return dict(tags)


def _summarise(path: Path, tags: dict[str, Any]) -> ExifSummary:
    width, height = _dimensions(path, tags)
    return ExifSummary(
        capture_time_unix_ms=_capture_time_ms(tags),
        camera_make=_text(tags, "Image Make"),
        camera_model=_text(tags, "Image Model"),
        lens_model=_text(tags, "EXIF LensModel"),
        has_gps="GPS GPSLatitude" in tags and "GPS GPSLongitude" in tags,
        width=width,
        height=height,
        orientation=_orientation(tags),
    )


def _text(tags: dict[str, Any], key: str) -> str:
    tag = tags.get(key)
    if tag is None:
        return ""
    values = getattr(tag, "values", tag)
    text = values if isinstance(values, str) else str(getattr(tag, "printable", ""))
    return text.replace("\x00", "").strip()[:_MAX_TEXT_CHARS]


def _first_int(tags: dict[str, Any], key: str) -> int:
    tag = tags.get(key)
    values = getattr(tag, "values", None)
    if isinstance(values, list) and values and isinstance(values[0], int):
        return values[0]
    return 0


def _orientation(tags: dict[str, Any]) -> int:
    value = _first_int(tags, "Image Orientation")
    return value if 1 <= value <= 8 else 0


def _dimensions(path: Path, tags: dict[str, Any]) -> tuple[int, int]:
    # RAW files often open in Pillow as TIFF and report their embedded preview's size.
    width, height = (0, 0) if is_raw(path) else image_dimensions(path)
    if not (width and height):
        width = _first_int(tags, "EXIF ExifImageWidth") or _first_int(tags, "Image ImageWidth")
        height = _first_int(tags, "EXIF ExifImageLength") or _first_int(tags, "Image ImageLength")
    if not (0 < width <= MAX_DIMENSION_PX and 0 < height <= MAX_DIMENSION_PX):
        return 0, 0
    return width, height


def _capture_time_ms(tags: dict[str, Any]) -> int:
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
