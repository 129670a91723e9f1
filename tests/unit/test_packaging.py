"""pyproject.toml metadata that a new user's install depends on (issue 19)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _pyproject() -> dict[str, Any]:
    with _PYPROJECT.open("rb") as f:
        return tomllib.load(f)


def test_license_is_an_spdx_string_with_a_setuptools_that_reads_it() -> None:
    # A table (`{ text = ... }`) makes setuptools >= 77 warn at every install.
    data = _pyproject()
    assert data["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in data["build-system"]["requires"]


def test_requires_python_has_no_upper_bound() -> None:
    # Debian and Ubuntu ship 3.13+; an upper bound would refuse them for no dependency's sake.
    spec = _pyproject()["project"]["requires-python"]
    assert spec == ">=3.11"
    assert "<" not in spec
