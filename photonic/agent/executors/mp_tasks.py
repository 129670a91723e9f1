"""MediaPipe's Tasks API behind two small typed classes: a person segmenter and a face
detector. mediapipe enters photonic here and nowhere else, so an upgrade (its API moved
between 0.10 and 1.x) touches one file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from photonic.agent.executors.base import ExecutorError
from photonic.agent.executors.images import RgbArray


def mediapipe_version() -> str:
    """The installed mediapipe's version; importing it is the availability check."""
    import mediapipe

    return str(mediapipe.__version__)


def _mp_image(rgb: RgbArray) -> Any:
    import mediapipe as mp

    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))


def _base_options(model: bytes) -> Any:
    from mediapipe.tasks.python.core.base_options import BaseOptions

    # The model's bytes, not its path: what runs is exactly what the recipe's hash names,
    # even if the file is replaced afterwards.
    return BaseOptions(model_asset_buffer=model)


class PersonSegmenter:
    """Selfie segmentation: for every pixel, the confidence that it belongs to a person."""

    def __init__(self, model: bytes) -> None:
        from mediapipe.tasks.python import vision

        options = vision.ImageSegmenterOptions(
            base_options=_base_options(model),
            running_mode=vision.RunningMode.IMAGE,
            output_confidence_masks=True, output_category_mask=False)
        self._task = vision.ImageSegmenter.create_from_options(options)

    def person_confidence(self, rgb: RgbArray) -> npt.NDArray[np.float32]:
        """Height x width floats in 0..1, at the input's own size."""
        result = self._task.segment(_mp_image(rgb))
        masks = result.confidence_masks
        if not masks:
            raise ExecutorError("the segmenter returned no mask", retryable=True)
        # The selfie models have one output channel (person); a multi-class model's last
        # mask is taken as the foreground.
        plane = np.asarray(masks[-1].numpy_view(), dtype=np.float32)
        return plane.reshape(plane.shape[0], plane.shape[1]).copy()

    def close(self) -> None:
        self._task.close()


@dataclass(frozen=True)
class FaceBox:
    """A face in pixel coordinates of the image it was found in."""

    x: int
    y: int
    width: int
    height: int
    score: float

    def as_dict(self) -> dict[str, object]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height,
                "score": round(self.score, 4)}


class MediaPipeFaceDetector:
    """BlazeFace short range: faces that fill a good part of the frame it is given."""

    def __init__(self, model: bytes, min_confidence: float) -> None:
        from mediapipe.tasks.python import vision

        options = vision.FaceDetectorOptions(
            base_options=_base_options(model), running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=min_confidence, min_suppression_threshold=0.3)
        self._task = vision.FaceDetector.create_from_options(options)

    def detect(self, rgb: RgbArray) -> list[FaceBox]:
        result = self._task.detect(_mp_image(rgb))
        faces: list[FaceBox] = []
        for detection in result.detections:
            box = detection.bounding_box
            score = float(detection.categories[0].score) if detection.categories else 0.0
            faces.append(FaceBox(int(box.origin_x), int(box.origin_y), int(box.width),
                                 int(box.height), score))
        return faces

    def close(self) -> None:
        self._task.close()
