"""bgremove: the person stays, the background turns transparent. MediaPipe's selfie
segmentation gives each pixel a person confidence; a threshold (optionally feathered) makes
it the alpha plane of an RGBA PNG the size of the upright input."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from photonic.agent.executors import images, params
from photonic.agent.executors.base import Execution, ExecutorInfo, Output
from photonic.agent.executors.mp_tasks import PersonSegmenter

NAME = "bgremove"
PARAMS = ("threshold", "feather")
DEFAULT_THRESHOLD = 0.5
MAX_FEATHER_PX = 50.0


class BackgroundRemover:
    """Loads the segmentation model once; run() serves one photo at a time."""

    def __init__(self, info: ExecutorInfo, model: bytes) -> None:
        self.info = info
        self._segmenter = PersonSegmenter(model)

    def run(self, input_path: Path, output_dir: Path, job_params: Mapping[str, object]
            ) -> Execution:
        """Params: threshold (0..1, default 0.5): the confidence above which a pixel is the
        person; feather (px, 0..50, default 0): a Gaussian blur of the mask's edge."""
        params.reject_unknown(job_params, PARAMS, NAME)
        threshold = params.number(job_params, "threshold", DEFAULT_THRESHOLD, 0.0, 1.0)
        feather_px = params.number(job_params, "feather", 0.0, 0.0, MAX_FEATHER_PX)
        rgb = images.load_rgb(input_path)
        confidence = self._segmenter.person_confidence(rgb)
        alpha = alpha_from_confidence(confidence, threshold, feather_px)
        out = output_dir / f"{input_path.stem}.png"
        images.save_png_rgba(rgb, alpha, out)
        opaque = float(np.count_nonzero(alpha >= 128)) / alpha.size
        return Execution(
            outputs=[Output(path=out, name=out.name)],
            details={"width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
                     "threshold": threshold, "feather": feather_px,
                     "foreground_fraction": round(opaque, 4)})

    def close(self) -> None:
        self._segmenter.close()


def alpha_from_confidence(confidence: npt.NDArray[np.float32], threshold: float,
                          feather_px: float) -> npt.NDArray[np.uint8]:
    """Person (confidence >= threshold) opaque, the rest transparent; feathered edges when
    asked. A hard threshold, not the raw confidence: the model's soft halo would otherwise
    leave a faint veil of background around the person."""
    alpha = np.where(confidence >= threshold, np.uint8(255), np.uint8(0)).astype(np.uint8)
    if feather_px > 0:
        alpha = images.blur_plane(alpha, feather_px)
    return alpha
