"""OpenCV's Haar cascade: the face detector of last resort, for a machine where MediaPipe
cannot load. cv2 enters the executors here and nowhere else. Some OpenCV builds ship no
cascade files; then this fallback simply does not exist (cascade_path returns None)."""

from __future__ import annotations

from pathlib import Path

from photonic.agent.executors.images import RgbArray
from photonic.agent.executors.mp_tasks import FaceBox

CASCADE_NAME = "haarcascade_frontalface_default.xml"


def cascade_path() -> Path | None:
    """The frontal-face cascade that came with OpenCV, or None when this build has none."""
    try:
        import cv2
    except ImportError:
        return None
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not folder:
        return None
    path = Path(folder) / CASCADE_NAME
    return path if path.is_file() else None


def opencv_version() -> str:
    import cv2

    return str(cv2.__version__)


class HaarFaceDetector:
    """Viola-Jones frontal faces: no confidence score (reported as 0), more false positives
    than MediaPipe, but no model download and any face size."""

    def __init__(self, path: Path) -> None:
        import cv2

        self._cv2 = cv2
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise ValueError(f"OpenCV could not load the cascade {path}")

    def detect(self, rgb: RgbArray) -> list[FaceBox]:
        gray = self._cv2.cvtColor(rgb, self._cv2.COLOR_RGB2GRAY)
        min_side = max(24, min(gray.shape) // 20)
        found = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                               minSize=(min_side, min_side))
        return [FaceBox(int(x), int(y), int(w), int(h), 0.0) for (x, y, w, h) in found]

    def close(self) -> None:
        """Nothing to release; present so both detectors close alike."""
