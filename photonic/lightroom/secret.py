"""The bridge's per-install shared secret: made once, kept 0600 beside the agent's buffer, and
compared in constant time, so only the plugin that was given it can talk to the bridge."""

from __future__ import annotations

import errno
import hmac
import os
import secrets
import stat
from pathlib import Path

from photonic.errors import PhotonicError

SECRET_FILE_NAME = "lightroom.secret"
SECRET_BYTES = 32


class SecretFileError(PhotonicError):
    """The secret file exists but cannot be used (not a regular file, not a secret)."""


def secret_path(buffer_path: Path) -> Path:
    return buffer_path / SECRET_FILE_NAME


def load_or_make_secret(buffer_path: Path) -> str:
    """The secret in <buffer_path>/lightroom.secret, made at first call (32 random bytes as hex).

    The file is written whole under a temporary name and linked into place, so a crash never
    leaves a half-written secret and two starting agents agree on one. A file that others may
    read is tightened to 0600 rather than refused: the fix is the same either way."""
    path = secret_path(buffer_path)
    buffer_path.mkdir(parents=True, exist_ok=True)
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    _make_secret(path)
    return _read_secret(path)


def secret_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison, so response timing reveals nothing of the secret."""
    if given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def _make_secret(path: Path) -> None:
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(SECRET_BYTES) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, path)  # fails if another start made it first: theirs wins
        except FileExistsError:
            return
        _fsync_dir(path.parent)
    finally:
        temp.unlink(missing_ok=True)


def _read_secret(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise SecretFileError(f"{path} is a symbolic link: the secret must be a file of its "
                              "own; remove the link and restart the agent") from None
    with os.fdopen(fd, encoding="ascii", errors="replace") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SecretFileError(f"{path} is not a regular file: remove it and restart the "
                                  "agent to make a new secret")
        if info.st_mode & 0o077:
            os.fchmod(f.fileno(), 0o600)
        text = f.read(1024).strip()
    if len(text) < 2 * SECRET_BYTES or any(c not in "0123456789abcdef" for c in text):
        raise SecretFileError(f"{path} does not hold a secret ({2 * SECRET_BYTES}+ hex digits): "
                              "remove it, restart the agent and reinstall the plugin with "
                              "`photonic lightroom install-plugin`")
    return text


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
