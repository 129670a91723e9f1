"""bgremove with the real selfie segmentation model on the astronaut photograph."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photonic.agent.executors.base import ExecutorError
from photonic.agent.executors.models import model_for
from photonic.agent.executors.registry import LoadedExecutor, load_executor
from tests.unit.agent.executors.test_images import rotated_jpeg


@pytest.fixture(scope="module")
def bgremove(models_dir: Path) -> Iterator[LoadedExecutor]:
    executor = load_executor("bgremove", models_dir, {})
    yield executor
    executor.close()


def test_cutout_is_rgba_png_of_input_size(bgremove: LoadedExecutor, astronaut: Path,
                                          out_dir: Path) -> None:
    """One output, <stem>.png, RGBA, 512x512 like the input; the astronaut (face, torso)
    is opaque and the plain wall behind her (top right, top left above the flag) is
    transparent. Pixels chosen from the model's mask, looked at beside the photo."""
    execution = bgremove.run(astronaut, out_dir, {})
    [output] = execution.outputs
    assert output.name == "astronaut.png" and output.path == out_dir / "astronaut.png"
    with Image.open(output.path) as image:
        assert image.format == "PNG" and image.mode == "RGBA" and image.size == (512, 512)
        alpha = np.asarray(image)[:, :, 3]
    for y, x in ((130, 225), (100, 200), (300, 150), (400, 230)):  # face, hair, suit
        assert alpha[y, x] == 255, (y, x)
    assert alpha[0:60, 440:512].max() == 0   # wall, top right
    assert alpha[0:40, 100:140].max() == 0   # wall, top left above the flag
    assert 0.4 < float(str(execution.details["foreground_fraction"])) < 0.7


def test_feather_softens_the_edge(bgremove: LoadedExecutor, astronaut: Path,
                                  out_dir: Path) -> None:
    """feather blurs the mask: partial alpha values appear along the outline."""
    hard = bgremove.run(astronaut, out_dir, {"threshold": 0.5})
    with Image.open(hard.outputs[0].path) as image:
        hard_levels = len(np.unique(np.asarray(image)[:, :, 3]))
    soft = bgremove.run(astronaut, out_dir, {"feather": 4})
    with Image.open(soft.outputs[0].path) as image:
        soft_alpha = np.asarray(image)[:, :, 3]
    assert hard_levels == 2
    assert len(np.unique(soft_alpha)) > 50 and soft_alpha[130, 225] == 255


def test_orientation_is_honoured(bgremove: LoadedExecutor, tmp_path: Path,
                                 out_dir: Path) -> None:
    """The cut-out has the upright size of an orientation-6 JPEG, not its stored size."""
    execution = bgremove.run(rotated_jpeg(tmp_path / "r.jpg", 6, 120, 80), out_dir, {})
    with Image.open(execution.outputs[0].path) as image:
        assert image.size == (80, 120)


@pytest.mark.parametrize("params, words", [
    ({"threshold": 1.5}, "between 0 and 1"),
    ({"threshold": True}, "must be a number"),
    ({"colour": "red"}, "unknown parameter 'colour'"),
])
def test_bad_params_are_not_retryable(bgremove: LoadedExecutor, astronaut: Path,
                                      out_dir: Path, params: dict[str, object],
                                      words: str) -> None:
    """A wrong parameter fails the job for good, naming the key."""
    with pytest.raises(ExecutorError, match=words) as caught:
        bgremove.run(astronaut, out_dir, params)
    assert not caught.value.retryable


def test_info_names_model_and_versions(bgremove: LoadedExecutor) -> None:
    """The recipe's facts: name, photonic + mediapipe version, model file and its hash."""
    info = bgremove.info
    assert info.name == "bgremove"
    assert info.version.startswith("0.") and "+mediapipe-1." in info.version
    assert (info.model_name, info.model_sha256) == (
        "selfie_segmentation.tflite", model_for("bgremove").sha256)


def test_a_damaged_model_is_refused(tmp_path: Path, models_dir: Path) -> None:
    """A default model whose hash is not the pinned one is not loaded."""
    (tmp_path / "selfie_segmentation.tflite").write_bytes(b"not a model")
    with pytest.raises(ExecutorError, match="photonic models fetch"):
        load_executor("bgremove", tmp_path, {})


def test_an_own_model_is_taken_as_it_is(tmp_path: Path, models_dir: Path) -> None:
    """The model option names a person's own file; its hash is recorded, not checked."""
    own = tmp_path / "mine.tflite"
    own.write_bytes((models_dir / "selfie_segmentation.tflite").read_bytes())
    executor = load_executor("bgremove", tmp_path / "empty", {"model": str(own)})
    try:
        assert executor.info.model_name == "mine.tflite"
    finally:
        executor.close()
