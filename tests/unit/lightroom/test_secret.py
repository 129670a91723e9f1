"""The bridge's per-install secret file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from photonic.lightroom.secret import (
    SecretFileError,
    load_or_make_secret,
    secret_matches,
    secret_path,
)


def test_made_once_0600_and_kept(tmp_path: Path) -> None:
    """The first call makes 32 random bytes as hex in a 0600 file; later calls read it back."""
    secret = load_or_make_secret(tmp_path / "buffer")
    path = secret_path(tmp_path / "buffer")
    assert len(secret) == 64 and int(secret, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_make_secret(tmp_path / "buffer") == secret
    assert [p.name for p in (tmp_path / "buffer").iterdir()] == ["lightroom.secret"]
    assert load_or_make_secret(tmp_path / "other") != secret


def test_loose_mode_is_tightened(tmp_path: Path) -> None:
    """A secret file others could read is made 0600 again, its secret unchanged."""
    secret = load_or_make_secret(tmp_path)
    os.chmod(secret_path(tmp_path), 0o644)
    assert load_or_make_secret(tmp_path) == secret
    assert stat.S_IMODE(secret_path(tmp_path).stat().st_mode) == 0o600


def test_unusable_files_are_refused(tmp_path: Path) -> None:
    """A file that holds no secret, or a symlink in its place, is refused with what to do."""
    secret_path(tmp_path).write_text("short\n")
    with pytest.raises(SecretFileError, match="remove it"):
        load_or_make_secret(tmp_path)
    secret_path(tmp_path).unlink()
    (tmp_path / "elsewhere").write_text("a" * 64)
    secret_path(tmp_path).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SecretFileError, match="symbolic link"):
        load_or_make_secret(tmp_path)


def test_secret_matches() -> None:
    """Only the exact secret matches; a missing or non-ASCII header does not raise."""
    assert secret_matches("ab" * 32, "ab" * 32)
    assert not secret_matches("ab" * 32, "ab" * 31)
    assert not secret_matches("ab" * 32, None)
    assert not secret_matches("ab" * 32, "é" * 64)
