"""What kind of photo a file is, and whether it has been written to its end yet."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_EOI = b"\xff\xd9"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_IEND_CHUNK = b"\x00\x00\x00\x00IEND\xaeB`\x82"

JPEG_MAX_PADDING_BYTES = 8192
"""Some cameras pad a JPEG after its EOI marker with 0x00 or 0xFF up to a sector boundary."""

_HEAD_BYTES = 16
_HEADER_FORMATS = ("JPEG", "PNG", "TIFF")


class PhotoKind(StrEnum):
    JPEG = "jpeg"
    HEIC = "heic"
    TIFF = "tiff"
    PNG = "png"
    RAW = "raw"
    SIDECAR = "sidecar"


RAW_SUFFIXES = frozenset(
    {".nef", ".cr2", ".cr3", ".arw", ".raf", ".orf", ".rw2", ".dng", ".pef", ".srw"}
)

PHOTO_KIND_BY_SUFFIX: dict[str, PhotoKind] = {
    ".jpg": PhotoKind.JPEG,
    ".jpeg": PhotoKind.JPEG,
    ".heic": PhotoKind.HEIC,
    ".heif": PhotoKind.HEIC,
    ".tif": PhotoKind.TIFF,
    ".tiff": PhotoKind.TIFF,
    ".png": PhotoKind.PNG,
    ".xmp": PhotoKind.SIDECAR,
    **{suffix: PhotoKind.RAW for suffix in RAW_SUFFIXES},
}
"""Lower-case suffix -> kind; a suffix not in here is not a photo photonic knows."""


def photo_kind(path: Path) -> PhotoKind | None:
    """The kind a file's suffix names (case-insensitive), or None for anything else."""
    return PHOTO_KIND_BY_SUFFIX.get(path.suffix.lower())


def is_raw(path: Path) -> bool:
    return photo_kind(path) is PhotoKind.RAW


def is_sidecar(path: Path) -> bool:
    return photo_kind(path) is PhotoKind.SIDECAR


def is_photo(path: Path) -> bool:
    """True for image files (not sidecars) whose suffix photonic knows."""
    kind = photo_kind(path)
    return kind is not None and kind is not PhotoKind.SIDECAR


def _read_head_and_tail(path: Path, tail_bytes: int) -> tuple[bytes, bytes]:
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(_HEAD_BYTES)
        handle.seek(max(0, size - tail_bytes))
        tail = handle.read(tail_bytes)
    return head, tail


def is_structurally_complete(path: Path) -> bool:
    """False only when a JPEG or PNG (judged by magic bytes) visibly lacks its end marker.

    Reads the first and last few KB, never the whole file. A zero-byte file counts as complete:
    there is nothing more to wait for. Formats without a cheap end marker count as complete.
    Raises OSError if the file cannot be read (e.g. it vanished).
    """
    head, tail = _read_head_and_tail(path, JPEG_MAX_PADDING_BYTES + len(JPEG_EOI))
    if not head:
        return True
    if head.startswith(JPEG_MAGIC):
        # Padding bytes are never D9, so stripping them leaves the EOI marker intact.
        return tail.rstrip(b"\x00\xff").endswith(JPEG_EOI)
    if head.startswith(PNG_MAGIC):
        return tail.endswith(PNG_IEND_CHUNK)
    return True


def image_dimensions(path: Path | BinaryIO) -> tuple[int, int]:
    """(width, height) from the image header via Pillow, or (0, 0) if Pillow cannot tell.

    Pillow's open() parses headers only; pixel data is never decoded here. Pillow is imported
    here, not at the top: agents that find nothing new never pay for it.
    """
    from PIL import Image

    try:
        with Image.open(path, formats=_HEADER_FORMATS) as image:
            width, height = image.size
            return int(width), int(height)
    except Exception:  # Pillow raises many types on hostile headers; dimensions are optional
        return 0, 0
