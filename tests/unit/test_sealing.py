"""The sealed format of encrypted backup nodes (photonic.sealing, photonic.archive_key): a
round trip at every size around the segment boundaries, and every way a sealed object can be
wrong is refused when opened: truncation, reordered or dropped segments, a wrong key, an
altered header, a flipped byte, bytes appended."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from photonic import errors
from photonic.archive_key import ArchiveKey, key_problem, load_key, new_key_file
from photonic.sealing import (
    HEADER_BYTES,
    TAG_BYTES,
    Opener,
    open_bytes,
    seal_bytes,
    seal_file,
    sealed_size,
)

SEG = 64  # small segments so a few hundred bytes span several


def _key(fill: int = 7) -> bytes:
    return bytes([fill]) * 32


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 5])
def test_round_trip_at_every_boundary(size: int) -> None:
    data = os.urandom(size)
    sealed = seal_bytes(data, _key(), segment=SEG)
    assert len(sealed) == sealed_size(size, SEG)
    assert open_bytes(sealed, _key()) == data
    opener = Opener(_key())  # fed a byte at a time: same plaintext, segment by segment
    out = b"".join(b"".join(opener.feed(sealed[i:i + 1])) for i in range(len(sealed)))
    opener.finish()
    assert out == data


def test_sealing_is_deterministic_and_hides_the_plaintext() -> None:
    data = b"photo bytes " * 50
    assert seal_bytes(data, _key(), segment=SEG) == seal_bytes(data, _key(), segment=SEG)
    assert seal_bytes(data, _key(1), segment=SEG) != seal_bytes(data, _key(2), segment=SEG)
    assert b"photo bytes" not in seal_bytes(data, _key(), segment=SEG)


def _segments(sealed: bytes) -> tuple[bytes, list[bytes]]:
    body = sealed[HEADER_BYTES:]
    n = SEG + TAG_BYTES
    return sealed[:HEADER_BYTES], [body[i:i + n] for i in range(0, len(body), n)]


def _refused(sealed: bytes, key: bytes, words: str) -> None:
    with pytest.raises(errors.IntegrityError, match=words):
        open_bytes(sealed, key)


def test_truncation_is_detected() -> None:
    sealed = seal_bytes(os.urandom(3 * SEG), _key(), segment=SEG)
    header, segs = _segments(sealed)
    _refused(header + b"".join(segs[:2]), _key(), "truncated")
    _refused(sealed[:-1], _key(), "truncated")
    _refused(sealed[:HEADER_BYTES - 1], _key(), "truncated")


def test_reordered_dropped_or_repeated_segments_are_refused() -> None:
    sealed = seal_bytes(os.urandom(3 * SEG), _key(), segment=SEG)
    header, (a, b, c) = _segments(sealed)
    _refused(header + b + a + c, _key(), "segment 0 .* does not authenticate")
    _refused(header + a + a + c, _key(), "segment 1 .* does not authenticate")
    _refused(header + a + c + c, _key(), "segment 1 .* does not authenticate")


def test_a_shorter_object_cannot_pass_for_a_truncated_longer_one() -> None:
    """Cutting an object to whole segments and rewriting the header's size fails: the header
    is authenticated with every segment, and the last-flag too."""
    sealed = seal_bytes(os.urandom(2 * SEG), _key(), segment=SEG)
    header, (a, _b) = _segments(sealed)
    forged = header[:-8] + SEG.to_bytes(8, "big")
    _refused(forged + a, _key(), "segment 0 .* does not authenticate")


def test_wrong_key_header_tamper_flipped_byte_and_trailing_bytes() -> None:
    sealed = seal_bytes(os.urandom(2 * SEG + 3), _key(), segment=SEG)
    _refused(sealed, _key(9), "not sealed with this archive key")
    for at in (HEADER_BYTES - 1, HEADER_BYTES + 3, len(sealed) - 1):
        flipped = bytearray(sealed)
        flipped[at] ^= 0x01
        with pytest.raises(errors.IntegrityError):
            open_bytes(bytes(flipped), _key())
    _refused(b"NOTSEALD" + sealed[8:], _key(), "not a sealed object")
    _refused(sealed + b"x", _key(), "bytes follow the last segment")


def test_seal_file_refuses_a_source_that_does_not_hash_to_its_name(tmp_path: Path) -> None:
    src = tmp_path / "obj"
    src.write_bytes(b"x" * 200)
    good = hashlib.sha256(b"x" * 200).hexdigest()
    out = io.BytesIO()
    sealed = seal_file(src, 200, good, _key(), out, segment=SEG)
    assert sealed.sha256 == hashlib.sha256(out.getvalue()).hexdigest()
    assert sealed.size == len(out.getvalue()) == sealed_size(200, SEG)
    with pytest.raises(errors.IntegrityError, match="no longer hashes"):
        seal_file(src, 200, "0" * 64, _key(), io.BytesIO(), segment=SEG)
    with pytest.raises(errors.IntegrityError, match="ended at"):
        seal_file(src, 300, good, _key(), io.BytesIO(), segment=SEG)


def test_key_file_names_fingerprint_and_derived_keys(tmp_path: Path) -> None:
    path = tmp_path / "certs" / "archive.key"
    key = new_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_bytes()) == 32
    with pytest.raises(errors.InvalidInput, match="already exists"):
        new_key_file(path)
    assert load_key(path).fingerprint == key.fingerprint
    assert key.fingerprint == hashlib.sha256(path.read_bytes()).digest()[:8].hex()
    assert key.fingerprint in repr(key) and path.read_bytes().hex() not in repr(key)
    sha = hashlib.sha256(b"photo").hexdigest()
    name = key.name_of(sha)
    assert len(name) == 64 and name != sha and name == key.name_of(sha)
    assert ArchiveKey(_key(3)).name_of(sha) != name
    assert key.object_key(name) != key.object_key(key.name_of_text("index"))
    assert key_problem(tmp_path / "none") == "no such file"
    (tmp_path / "short").write_bytes(b"abc")
    assert "3 bytes" in key_problem(tmp_path / "short")
