"""Loading an executor's input: upright, RGB, and a bad file reported as the input's fault."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photonic.agent.executors.base import ExecutorError
from photonic.agent.executors.images import load_rgb

ORIENTATION = 0x0112


def rotated_jpeg(path: Path, orientation: int, width: int = 60, height: int = 40) -> Path:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)  # left half red, right half black
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    Image.fromarray(pixels).save(path, "JPEG", exif=exif.tobytes(), quality=95)
    return path


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """Orientation 6 (rotate 90° clockwise to view): a 60x40 sensor image is 40x60 upright,
    and its left (red) half ends up on top."""
    rgb = load_rgb(rotated_jpeg(tmp_path / "r.jpg", 6))
    assert rgb.shape == (60, 40, 3)
    assert rgb[5, 20, 0] > 200 and rgb[55, 20, 0] < 50


def test_modes_are_converted_to_rgb(tmp_path: Path) -> None:
    """Grayscale and RGBA inputs come out as 3-channel uint8."""
    Image.new("L", (10, 8), 99).save(tmp_path / "g.png")
    Image.new("RGBA", (10, 8), (1, 2, 3, 4)).save(tmp_path / "a.png")
    for name in ("g.png", "a.png"):
        rgb = load_rgb(tmp_path / name)
        assert rgb.shape == (8, 10, 3) and rgb.dtype == np.uint8


def test_corrupt_image_is_not_retryable(tmp_path: Path) -> None:
    """A file that is not an image fails with the decoder's message, retryable=False."""
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"definitely not a JPEG" * 10)
    with pytest.raises(ExecutorError) as caught:
        load_rgb(bad)
    assert not caught.value.retryable
    assert "cannot identify image file" in str(caught.value)


def test_truncated_jpeg_is_not_retryable(tmp_path: Path) -> None:
    """A JPEG cut short fails at decode time with Pillow's own words."""
    good = rotated_jpeg(tmp_path / "whole.jpg", 1, 400, 300)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:700])
    with pytest.raises(ExecutorError) as caught:
        load_rgb(cut)
    assert not caught.value.retryable
    assert "truncated" in str(caught.value)


def test_missing_input_is_retryable(tmp_path: Path) -> None:
    """The staged input vanished: the worker's problem, not the photo's."""
    with pytest.raises(ExecutorError) as caught:
        load_rgb(tmp_path / "gone.jpg")
    assert caught.value.retryable
