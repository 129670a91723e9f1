"""Which executors exist and how each is built from the models folder and its options. Runs
in the executor child (child.py), never in the agent: building one imports mediapipe and
loads a model, either of which may fail or crash. Importing this module is cheap (the
agent's pool and config read KINDS and KIND_OPTIONS); the executors are imported when built.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import photonic
from photonic.agent.executors.base import Executor, ExecutorError, ExecutorInfo
from photonic.agent.executors.models import model_for

log = logging.getLogger(__name__)

KINDS = ("bgremove", "facecrop")
COMMON_OPTIONS = ("model", "max_concurrent")
KIND_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "bgremove": COMMON_OPTIONS,
    "facecrop": (*COMMON_OPTIONS, "detector", "min_confidence"),
}


class LoadedExecutor(Executor, Protocol):
    """An executor with a model in memory: run() many times, close() once."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class ModelBytes:
    name: str
    sha256: str
    data: bytes


def load_executor(kind: str, models_dir: Path, options: Mapping[str, object]
                  ) -> LoadedExecutor:
    """Builds the executor named kind. Raises ExecutorError saying what is missing."""
    builders: Mapping[str, Callable[[Path, Mapping[str, object]], LoadedExecutor]] = {
        "bgremove": _bgremove, "facecrop": _facecrop}
    if kind not in builders:
        raise ExecutorError(f"no executor named {kind!r}; there are {', '.join(KINDS)}")
    unknown = sorted(set(options) - set(KIND_OPTIONS[kind]))
    if unknown:
        raise ExecutorError(f"{kind}: unknown option {', '.join(unknown)}; it takes "
                            f"{', '.join(KIND_OPTIONS[kind])}")
    return builders[kind](models_dir, options)


def read_model(kind: str, models_dir: Path, options: Mapping[str, object]) -> ModelBytes:
    """The model's bytes and hash. The default model must match its pinned hash; a model the
    person named with the `model` option is taken as it is (its hash goes in every recipe)."""
    pinned = model_for(kind)
    chosen = options.get("model")
    path = Path(str(chosen)).expanduser() if chosen else models_dir / pinned.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        hint = "" if chosen else "; run `photonic models fetch`"
        raise ExecutorError(f"{kind}: cannot read model {path}: {exc.strerror}{hint}"
                            ) from None
    digest = hashlib.sha256(data).hexdigest()
    if not chosen and digest != pinned.sha256:
        raise ExecutorError(f"{kind}: model {path} has SHA-256 {digest[:12]}…, not the pinned "
                            f"{pinned.sha256[:12]}…; run `photonic models fetch`")
    return ModelBytes(path.name, digest, data)


def _version(engine: str) -> str:
    return f"{photonic.__version__}+{engine}"


def _bgremove(models_dir: Path, options: Mapping[str, object]) -> LoadedExecutor:
    from photonic.agent.executors import mp_tasks
    from photonic.agent.executors.bgremove import BackgroundRemover

    model = read_model("bgremove", models_dir, options)
    info = ExecutorInfo(name="bgremove",
                        version=_version(f"mediapipe-{mp_tasks.mediapipe_version()}"),
                        model_name=model.name, model_sha256=model.sha256)
    return BackgroundRemover(info, model.data)


def _facecrop(models_dir: Path, options: Mapping[str, object]) -> LoadedExecutor:
    """MediaPipe's detector; OpenCV's Haar cascade when asked (detector: haar) or when
    mediapipe itself cannot be imported on this machine. A missing model file is not a
    reason to fall back: it is fixed by `photonic models fetch`, and quietly cropping with a
    weaker detector would hide that."""
    from photonic.agent.executors import mp_tasks
    from photonic.agent.executors.facecrop import FaceCropper

    choice = str(options.get("detector", "mediapipe"))
    if choice not in ("mediapipe", "haar"):
        raise ExecutorError(f"facecrop: option detector must be mediapipe or haar, "
                            f"not {choice!r}")
    confidence = options.get("min_confidence", 0.5)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise ExecutorError(f"facecrop: option min_confidence must be a number, "
                            f"not {confidence!r}")
    if choice == "mediapipe":
        try:
            version = mp_tasks.mediapipe_version()
        except ImportError as exc:
            log.warning("event=executor_fallback executor=facecrop reason=%r", str(exc))
        else:
            model = read_model("facecrop", models_dir, options)
            info = ExecutorInfo(name="facecrop", version=_version(f"mediapipe-{version}"),
                                model_name=model.name, model_sha256=model.sha256)
            detector = mp_tasks.MediaPipeFaceDetector(model.data, float(confidence))
            return FaceCropper(info, detector, "mediapipe")
    return _haar_cropper()


def _haar_cropper() -> LoadedExecutor:
    from photonic.agent.executors import haar
    from photonic.agent.executors.facecrop import FaceCropper, FaceDetector

    path = haar.cascade_path()
    if path is None:
        raise ExecutorError("facecrop: the Haar cascade fallback is unavailable (this OpenCV "
                            "ships no cascade files)")
    data = path.read_bytes()
    info = ExecutorInfo(name="facecrop", version=_version(f"opencv-{haar.opencv_version()}"),
                        model_name=path.name, model_sha256=hashlib.sha256(data).hexdigest())
    detector: FaceDetector = haar.HaarFaceDetector(path)
    return FaceCropper(info, detector, "haar")
