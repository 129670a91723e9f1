"""Fixtures for the executor tests: the real model files (session-wide), and the photos."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.models import astronaut_jpeg, fetched_models


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding every executor model, fetched and verified once per session."""
    return fetched_models(tmp_path_factory.mktemp("models"))


@pytest.fixture
def astronaut(tmp_path: Path) -> Path:
    return astronaut_jpeg(tmp_path / "astronaut.jpg")


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path
