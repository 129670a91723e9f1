"""Seeded photo-like pixels and their JPEG encoding, at a given size or about a given byte count.

A smooth scene plus sensor-like noise, so JPEG sizes and compression ratios look like a
camera's; the same seed and arguments always give the same pixels. File formats, EXIF and odd
files are tests.support.photos's job.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageFilter

_NOISE_ALPHA = 0.18
_TARGET_TOLERANCE = 0.12
_CALIBRATION_SIZE = (512, 384)
_SCENE_MAX_SIDE = 800
_NOISE_TILE_SIDE = 1024


def smooth_scene(rng: random.Random, width: int, height: int) -> Image.Image:
    """Gradients and soft shapes: the low-frequency part of a photo, very compressible alone.

    Drawn at most _SCENE_MAX_SIDE wide and scaled up: it is smooth anyway, and blurring a
    full-size frame would dominate the cost of making large test photos.
    """
    scale = min(1.0, _SCENE_MAX_SIDE / max(width, height))
    small = _draw_scene(rng, max(1, round(width * scale)), max(1, round(height * scale)))
    return small if scale == 1.0 else small.resize((width, height), Image.Resampling.BILINEAR)


def _draw_scene(rng: random.Random, width: int, height: int) -> Image.Image:
    size = (width, height)
    horizontal = Image.linear_gradient("L").rotate(rng.choice((90, 270))).resize(size)
    vertical = Image.linear_gradient("L").resize(size)
    radial = Image.radial_gradient("L").resize(size)
    channels = [horizontal, vertical, radial]
    rng.shuffle(channels)
    lifts = [rng.randint(0, 80) for _ in channels]
    scales = [rng.uniform(0.5, 1.0) for _ in channels]
    tinted = [
        band.point(lambda v, lift=lift, scale=scale: int(lift + v * scale))
        for band, lift, scale in zip(channels, lifts, scales, strict=True)
    ]
    scene = Image.merge("RGB", tinted)
    draw = ImageDraw.Draw(scene)
    for _ in range(rng.randint(3, 8)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1 = min(width, x0 + rng.randint(width // 10 + 1, width // 3 + 2))
        y1 = min(height, y0 + rng.randint(height // 10 + 1, height // 3 + 2))
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1, y1), fill=colour)
    return scene.filter(ImageFilter.GaussianBlur(radius=max(1, min(width, height) // 200)))


def _photo_pixels(rng: random.Random, width: int, height: int) -> Image.Image:
    """A photo-like image: smooth scene plus seeded sensor-like noise (so JPEG sizes are real)."""
    scene = smooth_scene(rng, width, height)
    return Image.blend(scene, _noise(rng, width, height), _NOISE_ALPHA)


def _noise(rng: random.Random, width: int, height: int) -> Image.Image:
    """Seeded RGB noise; large frames repeat one tile, since generating every byte is slow.

    JPEG codes each 8x8 block on its own, so the repetition does not make files smaller.
    """
    tile_w, tile_h = min(width, _NOISE_TILE_SIDE), min(height, _NOISE_TILE_SIDE)
    tile = Image.frombytes("RGB", (tile_w, tile_h), rng.randbytes(tile_w * tile_h * 3))
    if (tile_w, tile_h) == (width, height):
        return tile
    noise = Image.new("RGB", (width, height))
    phase_x, phase_y = rng.randrange(tile_w), rng.randrange(tile_h)
    for top in range(-phase_y, height, tile_h):
        for left in range(-phase_x, width, tile_w):
            noise.paste(tile, (left, top))
    return noise


def _encode_jpeg(image: Image.Image, quality: int, exif: Image.Exif | None) -> bytes:
    buffer = io.BytesIO()
    options: dict[str, object] = {"quality": quality}
    if exif is not None:
        options["exif"] = exif
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _size_for_target(seed: int, target_bytes: int, aspect: float, quality: int) -> tuple[int, int]:
    """Estimate dimensions that give about target_bytes, from a small render of the same kind."""
    width, height = _CALIBRATION_SIZE
    sample = _encode_jpeg(_photo_pixels(random.Random(seed), width, height), quality, None)
    bytes_per_pixel = len(sample) / (width * height)
    pixels = max(64 * 64, target_bytes / bytes_per_pixel)
    return _dims_for_pixels(pixels, aspect)


def _dims_for_pixels(pixels: float, aspect: float) -> tuple[int, int]:
    height = max(16, int((pixels / aspect) ** 0.5))
    return max(16, int(height * aspect)), height


def jpeg_bytes(
    *,
    seed: int,
    width: int = 640,
    height: int = 480,
    quality: int = 90,
    exif: Image.Exif | None = None,
    target_bytes: int | None = None,
) -> bytes:
    """The bytes make_jpeg writes; target_bytes (approximate) overrides width/height, not aspect."""
    if target_bytes is not None:
        aspect = width / height
        width, height = _size_for_target(seed, target_bytes, aspect, quality)
        data = _encode_jpeg(_photo_pixels(random.Random(seed), width, height), quality, exif)
        ratio = target_bytes / len(data)
        if abs(ratio - 1.0) <= _TARGET_TOLERANCE:
            return data
        width, height = _dims_for_pixels(width * height * ratio, aspect)
    return _encode_jpeg(_photo_pixels(random.Random(seed), width, height), quality, exif)
