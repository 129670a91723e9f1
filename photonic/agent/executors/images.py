"""Pillow for the executors: decode an input upright (EXIF orientation applied) into an RGB
array, and encode outputs. Pillow enters the executors here and nowhere else."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter, ImageOps

from photonic.agent.executors.base import ExecutorError

RgbArray = npt.NDArray[np.uint8]
"""Height x width x 3, uint8, row-major: what MediaPipe's SRGB image format takes."""

MAX_INPUT_PIXELS = 200_000_000
"""Larger inputs are refused before they are decoded (a 200 MP frame is ~600 MB as RGB);
Pillow's own bomb guard would refuse at twice its smaller default."""


PNG_COMPRESS_LEVEL = 3
"""Measured on a 24 MP cut-out: level 6 (Pillow's default) 2.8 s and 10.0 MB, level 3 1.3 s and
12.3 MB, level 1 1.0 s and 13.6 MB. Encoding was most of bgremove's time."""


def load_rgb(path: Path) -> RgbArray:
    """The photo as it is meant to be seen: EXIF orientation applied, converted to RGB.
    A file Pillow cannot decode is the input's fault: ExecutorError(retryable=False) with the
    decoder's own message."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                if opened.width * opened.height > MAX_INPUT_PIXELS:
                    raise ExecutorError(
                        f"image is {opened.width}x{opened.height}, more than "
                        f"{MAX_INPUT_PIXELS // 1_000_000} MP", retryable=False)
                opened.load()  # decode now: a truncated file fails here, not later
                upright = ImageOps.exif_transpose(opened)
                rgb = upright.convert("RGB")
    except ExecutorError:
        raise
    except FileNotFoundError as exc:
        # The input is the worker's own staged copy: gone means the worker, not the photo.
        raise ExecutorError(f"input missing: {exc.filename}", retryable=True) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as exc:
        raise ExecutorError(f"cannot decode image: {exc}", retryable=False) from None
    return np.asarray(rgb, dtype=np.uint8)


def save_png_rgba(rgb: RgbArray, alpha: npt.NDArray[np.uint8], path: Path) -> None:
    """RGB plus an alpha plane as an RGBA PNG, written whole or not at all."""
    rgba = np.dstack([rgb, alpha])
    _save_atomically(Image.fromarray(rgba), path, "PNG", compress_level=PNG_COMPRESS_LEVEL)


def save_jpeg(rgb: RgbArray, path: Path, *, quality: int = 95, side_px: int | None = None
              ) -> None:
    """An RGB array as a JPEG, resized first to side_px x side_px when asked (Lanczos)."""
    image = Image.fromarray(rgb)
    if side_px is not None and image.size != (side_px, side_px):
        image = image.resize((side_px, side_px), Image.Resampling.LANCZOS)
    _save_atomically(image, path, "JPEG", quality=quality)


def blur_plane(plane: npt.NDArray[np.uint8], radius_px: float) -> npt.NDArray[np.uint8]:
    """A Gaussian blur of one 8-bit plane: feathers a hard mask's edge."""
    blurred = Image.fromarray(plane).filter(ImageFilter.GaussianBlur(radius_px))
    return np.asarray(blurred, dtype=np.uint8)


def _save_atomically(image: Image.Image, path: Path, image_format: str, **options: int
                     ) -> None:
    # Under a temporary name first: a worker killed mid-write leaves no truncated output
    # under the name it would upload.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        image.save(tmp, image_format, **options)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
