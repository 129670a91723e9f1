"""The archive key: 32 random bytes that encrypt what a primary sends to an `encrypted: true`
backup node. It is made by `photonic certs archive-key`, kept beside the primary's
certificates (security.archive_key_path) and never sent anywhere: whoever runs the node holds
ciphertext only. Losing it is losing every encrypted copy, so it has a short fingerprint that
status pages print, to check a backed-up key against.

Two keys are derived from it (HKDF-SHA256, one label each), so the node's names and the
contents never share a key: the name key turns a photo's SHA-256 into the name it is stored
under on the node (an HMAC), the sealing key is the root of each object's own key
(photonic.sealing)."""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from photonic import errors

KEY_BYTES = 32
DEFAULT_FILE_NAME = "archive.key"
_NAME_LABEL = b"photonic archive v1 names"
_SEAL_LABEL = b"photonic archive v1 sealing"


def _derive(key: bytes, label: bytes, salt: bytes = b"") -> bytes:
    # Imported here: config reads key_problem and DEFAULT_FILE_NAME on every command, and
    # cryptography's import is ~5 ms of each start that never derives a key.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt or None,
                info=label).derive(key)


@dataclass(frozen=True, repr=False)
class ArchiveKey:
    """A loaded archive key; repr never shows the bytes."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise errors.InvalidInput(f"an archive key is {KEY_BYTES} bytes, "
                                      f"not {len(self.secret)}")

    def __repr__(self) -> str:
        return f"ArchiveKey({self.fingerprint})"

    @property
    def fingerprint(self) -> str:
        """First 8 bytes of the key's SHA-256, hex: says which key without revealing it."""
        return hashlib.sha256(self.secret).digest()[:8].hex()

    def name_of(self, sha256: str) -> str:
        """The node's name for a content: hex HMAC-SHA256 of its SHA-256 under the name key.
        Without the key the name tells nothing of the hash; with it, the same content always
        gets the same name (so a repeated upload deduplicates)."""
        return hmac.new(self._name_key, bytes.fromhex(sha256), hashlib.sha256).hexdigest()

    def name_of_text(self, label: str) -> str:
        """The node's name for a non-photo object (the sealed index), by a label."""
        return hmac.new(self._name_key, b"label:" + label.encode(), hashlib.sha256).hexdigest()

    def object_key(self, name: str) -> bytes:
        """The AES-256 key of the object stored under name: deterministic, one per object,
        so equal contents seal to equal ciphertexts and no two contents share a key."""
        return _derive(self._seal_key, b"object", bytes.fromhex(name))

    @cached_property
    def _name_key(self) -> bytes:
        return _derive(self.secret, _NAME_LABEL)

    @cached_property
    def _seal_key(self) -> bytes:
        return _derive(self.secret, _SEAL_LABEL)


def new_key_file(path: Path) -> ArchiveKey:
    """Writes a new random key to path (0600); refuses to replace an existing file, since
    that would make every copy sealed with the old key unreadable."""
    secret = os.urandom(KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise errors.InvalidInput(
            f"{path} already exists: an archive key is never replaced (the copies sealed with "
            "it could no longer be read). Move it away first if you really mean to") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, secret)
        os.fsync(fd)
    finally:
        os.close(fd)
    return ArchiveKey(secret)


def key_problem(path: Path) -> str:
    """Why path is not a usable archive key ('' when it is)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if len(data) != KEY_BYTES:
        return f"{len(data)} bytes, not the {KEY_BYTES} of an archive key"
    return ""


def load_key(path: Path) -> ArchiveKey:
    problem = key_problem(path)
    if problem:
        raise errors.InvalidInput(f"archive key {path}: {problem}")
    return ArchiveKey(path.read_bytes())
