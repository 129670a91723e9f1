"""facecrop with the real short-range face detector (and OpenCV's cascade as fallback)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photonic.agent.executors.base import ExecutorError
from photonic.agent.executors.facecrop import crop_square
from photonic.agent.executors.mp_tasks import FaceBox
from photonic.agent.executors.registry import LoadedExecutor, load_executor
from tests.support.models import ASTRONAUT_FACE, coffee_jpeg, gray_jpeg


@pytest.fixture(scope="module")
def facecrop(models_dir: Path) -> Iterator[LoadedExecutor]:
    executor = load_executor("facecrop", models_dir, {})
    yield executor
    executor.close()


def _box(d: Mapping[str, object]) -> tuple[int, ...]:
    return tuple(int(str(d[k])) for k in ("x", "y", "width", "height"))


def _contains(crop: Mapping[str, object], face: tuple[int, ...]) -> bool:
    x, y, side = (int(str(crop[k])) for k in ("x", "y", "size"))
    fx, fy, fw, fh = face
    return x <= fx and y <= fy and fx + fw <= x + side and fy + fh <= y + side


def test_astronaut_face_is_cropped(facecrop: LoadedExecutor, astronaut: Path,
                                   out_dir: Path) -> None:
    """The face is found where it is (x 177, y 82, 95 px), the square crop holds it with 30%
    margin on each side, and the output is a JPEG of that crop named <stem>.jpg."""
    execution = facecrop.run(astronaut, out_dir, {})
    [face] = execution.details["faces"]  # type: ignore[misc]
    [crop] = execution.details["crops"]  # type: ignore[misc]
    box = _box(face)
    assert all(abs(a - b) <= 4 for a, b in zip(box, ASTRONAUT_FACE, strict=True)), box
    assert _contains(crop, box)
    assert execution.details["detector"] == "mediapipe"
    [output] = execution.outputs
    assert output.name == "astronaut.jpg"
    with Image.open(output.path) as image:
        assert image.format == "JPEG"
        assert image.size == (crop["size"], crop["size"])
        assert abs(image.size[0] - round(95 * 1.6)) <= 2


def test_size_and_margin(facecrop: LoadedExecutor, astronaut: Path, out_dir: Path) -> None:
    """size resizes the square output; margin 0 crops the box itself."""
    execution = facecrop.run(astronaut, out_dir, {"size": 64, "margin": 0})
    [crop] = execution.details["crops"]  # type: ignore[misc]
    assert abs(int(crop["size"]) - 95) <= 4
    with Image.open(execution.outputs[0].path) as image:
        assert image.size == (64, 64)


def test_which_all_names_each_face(facecrop: LoadedExecutor, tmp_path: Path,
                                   out_dir: Path) -> None:
    """Two astronauts side by side: which=all gives <stem>.face1.jpg (left) and face2."""
    execution = facecrop.run(_two(tmp_path), out_dir, {"which": "all"})
    assert [o.name for o in execution.outputs] == ["pair.face1.jpg", "pair.face2.jpg"]
    faces = execution.details["faces"]
    assert isinstance(faces, list) and faces[0]["x"] < 512 <= faces[1]["x"]


def test_no_face_is_not_retryable(facecrop: LoadedExecutor, tmp_path: Path,
                                  out_dir: Path) -> None:
    """A cup of coffee and a flat gray frame: "no face found", retryable=False."""
    for photo in (coffee_jpeg(tmp_path / "coffee.jpg"), gray_jpeg(tmp_path / "gray.jpg")):
        with pytest.raises(ExecutorError, match="no face found") as caught:
            facecrop.run(photo, out_dir, {})
        assert not caught.value.retryable
    assert list(out_dir.iterdir()) == []


def test_small_face_in_a_large_frame_is_found_in_tiles(facecrop: LoadedExecutor,
                                                       tmp_path: Path, out_dir: Path) -> None:
    """The astronaut pasted into a 2048 px frame (face ~5% of its side): missed by a look at
    the whole frame, found by the tiled second look, in the big frame's coordinates."""
    from skimage import data

    frame = np.full((2048, 2048, 3), 128, np.uint8)
    frame[1400:1912, 1300:1812] = data.astronaut()
    Image.fromarray(frame).save(big := tmp_path / "big.jpg", quality=95)
    execution = facecrop.run(big, out_dir, {})
    [face] = execution.details["faces"]  # type: ignore[misc]
    x, y, w, _ = _box(face)
    assert str(execution.details["pass"]).startswith("tiles")
    assert abs(x - (1300 + 177)) <= 8 and abs(y - (1400 + 82)) <= 8 and 85 <= w <= 110


def test_orientation_is_honoured(facecrop: LoadedExecutor, tmp_path: Path,
                                 out_dir: Path) -> None:
    """An astronaut stored lying on its side with orientation 6 is found upright, and the
    face box is in the upright photo's coordinates."""
    from skimage import data

    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated 90° counter-clockwise; view rotates it back
    sideways = Image.fromarray(data.astronaut()).transpose(Image.Transpose.ROTATE_90)
    sideways.save(path := tmp_path / "side.jpg", quality=95, exif=exif.tobytes())
    execution = facecrop.run(path, out_dir, {})
    [face] = execution.details["faces"]  # type: ignore[misc]
    box = _box(face)
    assert all(abs(a - b) <= 6 for a, b in zip(box, ASTRONAUT_FACE, strict=True)), box


def test_haar_fallback_finds_the_face(models_dir: Path, astronaut: Path,
                                      out_dir: Path) -> None:
    """detector=haar: OpenCV's cascade (shipped by this OpenCV) finds the same face."""
    executor = load_executor("facecrop", models_dir, {"detector": "haar"})
    try:
        execution = executor.run(astronaut, out_dir, {})
    finally:
        executor.close()
    assert executor.info.model_name == "haarcascade_frontalface_default.xml"
    assert "+opencv-" in executor.info.version
    [face] = execution.details["faces"]  # type: ignore[misc]
    [crop] = execution.details["crops"]  # type: ignore[misc]
    x, y, w, h = _box(face)
    assert 160 < x < 200 and 50 < y < 100 and _contains(crop, (x, y, w, h))


def test_crop_square_stays_inside() -> None:
    """A face at the corner: the square moves inside rather than shrinking or spilling."""
    square = crop_square(FaceBox(0, 0, 50, 50, 1.0), 0.3, 400, 300)
    assert (square.x, square.y, square.side) == (0, 0, 80)
    square = crop_square(FaceBox(350, 250, 50, 50, 1.0), 0.3, 400, 300)
    assert (square.x + square.side, square.y + square.side) == (400, 300)
    assert crop_square(FaceBox(0, 0, 300, 300, 1.0), 1.0, 400, 300).side == 300


def _two(tmp_path: Path) -> Path:
    from skimage import data

    pair = np.concatenate([data.astronaut(), data.astronaut()], axis=1)
    Image.fromarray(pair).save(path := tmp_path / "pair.jpg", quality=95)
    return path
