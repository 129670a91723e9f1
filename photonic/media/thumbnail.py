"""Renders a JPEG thumbnail of a photo's bytes with Pillow: upright (EXIF orientation
applied), long edge at most the asked size, from a RAW's embedded preview when it has one.

Pillow is limited to the raster formats photos come in (never EPS, which would run
Ghostscript), JPEGs are decoded at a reduced scale (draft mode) when that still covers the
size asked, and a picture larger than MAX_SOURCE_PIXELS is refused before its pixels are
decoded. Anything Pillow cannot read is UnsupportedMedia, never an internal error."""

from __future__ import annotations

import io
import mmap
import os
from typing import BinaryIO

from PIL import Image, ImageOps

from photonic.errors import UnsupportedMedia
from photonic.media.raw_preview import TAG_ORIENTATION, largest_preview

MAX_SOURCE_PIXELS = 200_000_000
"""Refused beyond this; Pillow itself refuses beyond twice its MAX_IMAGE_PIXELS (~179 MP)."""
JPEG_QUALITY = 80
FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "GIF", "BMP")
_DIRECT_MAGICS = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")
"""Files Pillow reads as they are; anything else is looked into for an embedded preview
first (TIFF-based RAWs open in Pillow as a TIFF of their tiny first IFD)."""
_WHITE = (255, 255, 255)


def render_thumbnail(source: BinaryIO, long_edge: int) -> bytes:
    """The JPEG thumbnail of the open file `source`; raises UnsupportedMedia when it holds
    no image Pillow can decode. Blocking: call it from a worker thread."""
    size = os.fstat(source.fileno()).st_size
    if size == 0:
        raise UnsupportedMedia("the content is empty, not an image")
    with mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as data:
        head = data[:12]
        direct = head.startswith(_DIRECT_MAGICS) or head[8:12] == b"WEBP"
        preview = None if direct else largest_preview(data)
        if preview is None:
            source.seek(0)
            return _render(source, long_edge, 0)
        jpeg = io.BytesIO(data[preview.span.start:preview.span.end])
    return _render(jpeg, long_edge, preview.orientation)


def _render(source: BinaryIO, long_edge: int, fallback_orientation: int) -> bytes:
    try:
        with Image.open(source, formats=FORMATS) as image:
            width, height = image.size
            if width * height > MAX_SOURCE_PIXELS:
                raise UnsupportedMedia(f"the image is {width}x{height} pixels, more than the "
                                       f"{MAX_SOURCE_PIXELS // 1_000_000} MP a thumbnail is "
                                       "made from")
            image.draft("RGB", (long_edge, long_edge))
            image.thumbnail((long_edge, long_edge), Image.Resampling.LANCZOS)
            _orient(image, fallback_orientation)
            upright = ImageOps.exif_transpose(image)
            out = io.BytesIO()
            _as_rgb(upright).save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
            return out.getvalue()
    except UnsupportedMedia:
        raise
    except Image.DecompressionBombError:
        raise UnsupportedMedia("the image has too many pixels to make a thumbnail of") from None
    except Exception:  # Pillow's failures on hostile or broken files are open-ended
        # Pillow's own message may name the file (a server path): never passed on.
        raise UnsupportedMedia("the content is not an image photonic can decode (broken, "
                               "truncated, or a format without a thumbnail)") from None


def _orient(image: Image.Image, fallback: int) -> None:
    """A RAW preview without its own orientation takes its container's."""
    exif = image.getexif()
    if 2 <= fallback <= 8 and exif.get(TAG_ORIENTATION, 1) == 1:
        exif[TAG_ORIENTATION] = fallback


def _as_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB for JPEG: transparency on white, 16-bit and float greys scaled down."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        high = image.getextrema()[1]
        scale = 255.0 / float(high) if isinstance(high, int | float) and high > 255 else 1.0
        return image.convert("F").point(lambda v: v * scale).convert("L").convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")
