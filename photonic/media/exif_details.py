"""The EXIF a person reads beside a photo (camera, lens, exposure, ISO, focal length, when it
was taken) as display text, from the stored bytes; every field is "" when absent or absurd,
and nothing raises."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, BinaryIO

from photonic.media.exif import plain_tags, read_tags, summarise

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 40
_TAKEN_TAGS = (("EXIF DateTimeOriginal", "EXIF OffsetTimeOriginal"),
               ("EXIF DateTimeDigitized", "EXIF OffsetTimeDigitized"),
               ("Image DateTime", "EXIF OffsetTime"))
_ISO_TAGS = ("EXIF ISOSpeedRatings", "EXIF PhotographicSensitivity")


@dataclass(frozen=True)
class ExifDetails:
    camera: str = ""
    lens: str = ""
    exposure: str = ""
    """"1/250 s", "2.5 s"."""
    iso: str = ""
    focal_length: str = ""
    """"50 mm", "17.5 mm"."""
    taken: str = ""
    """As the camera's clock said: "2024-06-01 10:00:00", with its UTC offset when it
    recorded one ("2024-06-01 10:00:00 +02:00")."""


def read_exif_details(source: BinaryIO) -> ExifDetails:
    """The details of the open file `source` (read from its start)."""
    try:
        tags = read_tags(source)
    except Exception as exc:  # exifread's failure modes on hostile input are open-ended
        log.debug("exif unreadable error=%r", exc)
        return ExifDetails()
    try:
        return details_of(tags)
    except Exception as exc:
        log.debug("exif details failed error=%r", exc)
        return ExifDetails()


def details_of(tags: dict[str, Any]) -> ExifDetails:
    """The details from exifread's tags."""
    summary = summarise(plain_tags(tags), (0, 0))
    return ExifDetails(
        camera=summary.camera, lens=summary.lens_model,
        exposure=_exposure(_number(tags.get("EXIF ExposureTime"))),
        iso=next((str(int(v)) for k in _ISO_TAGS
                  if (v := _number(tags.get(k))) is not None and 0 < v < 10_000_000), ""),
        focal_length=_focal(_number(tags.get("EXIF FocalLength"))),
        taken=_taken(tags) if summary.capture_time_unix_ms else "")


def _number(tag: Any) -> Fraction | None:
    """The first value of a numeric tag (exifread's Ratio is a Fraction)."""
    values = getattr(tag, "values", None)
    if not isinstance(values, list) or not values:
        return None
    first = values[0]
    if isinstance(first, int | Fraction):
        return Fraction(first)
    return None


def _exposure(seconds: Fraction | None) -> str:
    if seconds is None or not 0 < seconds < 100_000:
        return ""
    if seconds < 1:
        return f"1/{round(1 / seconds)} s"
    return f"{float(seconds):g} s"


def _focal(mm: Fraction | None) -> str:
    if mm is None or not 0 < mm < 100_000:
        return ""
    return f"{round(float(mm), 1):g} mm"


def _text(tags: dict[str, Any], key: str) -> str:
    values = getattr(tags.get(key), "values", "")
    return values.replace("\x00", "").strip()[:MAX_TEXT_CHARS] if isinstance(values, str) else ""


def _taken(tags: dict[str, Any]) -> str:
    for time_key, offset_key in _TAKEN_TAGS:
        text = _text(tags, time_key)
        if len(text) >= 19 and text[4] in ":-" and text[7] in ":-":
            moment = f"{text[:4]}-{text[5:7]}-{text[8:10]} {text[11:19]}"
            offset = _text(tags, offset_key)
            return f"{moment} {offset}" if offset else moment
    return ""
