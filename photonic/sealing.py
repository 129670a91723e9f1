"""The sealed format of an object on an encrypted backup node: AES-256-GCM in fixed segments,
deterministic, streamed.

    header  = magic "PHOTSEAL" | format (1 byte) | segment size (u32) | plaintext size (u64)
    segment = AES-256-GCM(object key, nonce = segment number (96-bit big-endian),
                          plaintext segment, associated data = header | last-flag byte)

The object key is derived from the archive key and the object's name on the node (see
archive_key.ArchiveKey.object_key), so the same content under the same key always seals to
the same bytes: a resumed or repeated upload is the same object to the node, which verifies
it by the SHA-256 of these bytes as it verifies any upload. Each nonce is used once per key
(one key per content). The header is authenticated with every segment, so its sizes cannot be
changed; the segment number in the nonce catches reordered or repeated segments, the plaintext
size (and the last-flag) a truncated or extended object; a wrong key fails the first tag.
Segments are opened one at a time: nothing is ever released unauthenticated and no whole file
is held in memory."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from photonic import errors

MAGIC = b"PHOTSEAL"
FORMAT = 1
SEGMENT_BYTES = 1024 * 1024
MAX_SEGMENT_BYTES = 16 * 1024 * 1024
TAG_BYTES = 16
_HEADER = struct.Struct(">8sBIQ")
HEADER_BYTES = _HEADER.size


def _segments(size: int, segment: int) -> int:
    return max(1, -(-size // segment))


def sealed_size(size: int, segment: int = SEGMENT_BYTES) -> int:
    """Bytes of the sealed form of size plaintext bytes."""
    return HEADER_BYTES + size + TAG_BYTES * _segments(size, segment)


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def _aad(header: bytes, last: bool) -> bytes:
    return header + (b"\x01" if last else b"\x00")


@dataclass(frozen=True)
class Sealed:
    """What seal_file wrote: the ciphertext's SHA-256 and size, the node's manifest entry."""

    sha256: str
    size: int


def seal_stream(read: Callable[[int], bytes], size: int, key: bytes,
                write: Callable[[bytes], object], *,
                segment: int = SEGMENT_BYTES) -> tuple[Sealed, str]:
    """Seals exactly size bytes from read into write; returns the sealed form's hash and size
    and the plaintext's SHA-256 (the caller checks it: damaged bytes are never sent)."""
    aead = AESGCM(key)
    header = _HEADER.pack(MAGIC, FORMAT, segment, size)
    out_hash = hashlib.sha256(header)
    plain_hash = hashlib.sha256()
    write(header)
    written = len(header)
    count = _segments(size, segment)
    for index in range(count):
        want = min(segment, size - index * segment)
        data = read(want)
        if len(data) != want:
            raise errors.IntegrityError(f"the source ended at {index * segment + len(data)} of "
                                        f"{size} bytes while being sealed")
        plain_hash.update(data)
        sealed = aead.encrypt(_nonce(index), data, _aad(header, index == count - 1))
        out_hash.update(sealed)
        write(sealed)
        written += len(sealed)
    if read(1):
        raise errors.IntegrityError(f"the source holds more than {size} bytes")
    return Sealed(out_hash.hexdigest(), written), plain_hash.hexdigest()


def seal_file(source: Path, size: int, sha256: str, key: bytes, out: BinaryIO,
              *, segment: int = SEGMENT_BYTES) -> Sealed:
    """Seals the stored object at source (size bytes, content sha256) into out; IntegrityError
    when the source's bytes do not hash to sha256."""
    with open(source, "rb") as f:
        sealed, plain = seal_stream(f.read, size, key, out.write, segment=segment)
    if plain != sha256:
        raise errors.IntegrityError(f"{source.name} no longer hashes to its name: not sealed")
    return sealed


def seal_bytes(data: bytes, key: bytes, *, segment: int = SEGMENT_BYTES) -> bytes:
    parts: list[bytes] = []
    view = memoryview(data)
    at = 0

    def read(n: int) -> bytes:
        nonlocal at
        chunk = bytes(view[at:at + n])
        at += len(chunk)
        return chunk

    seal_stream(read, len(data), key, parts.append, segment=segment)
    return b"".join(parts)


class Opener:
    """Opens a sealed object fed in pieces of any size: feed() returns the plaintext of each
    segment completed and authenticated, finish() says whether the object was whole.
    IntegrityError names what is wrong (wrong key or altered bytes, truncation, a header that
    is not one of ours)."""

    def __init__(self, key: bytes, *, max_plain_bytes: int = 1 << 50) -> None:
        self._aead = AESGCM(key)
        self._max = max_plain_bytes
        self._buffer = bytearray()
        self._header = b""
        self._segment = 0
        self._size = 0
        self._count = 0
        self._index = 0
        self.plain_bytes = 0

    @property
    def size(self) -> int:
        """The plaintext size the header declares (0 until the header is in)."""
        return self._size

    @property
    def done(self) -> bool:
        return bool(self._header) and self._index == self._count

    def _read_header(self) -> None:
        magic, fmt, segment, size = _HEADER.unpack(bytes(self._buffer[:HEADER_BYTES]))
        if magic != MAGIC:
            raise errors.IntegrityError("not a sealed object (no PHOTSEAL header)")
        if fmt != FORMAT:
            raise errors.IntegrityError(f"sealed format {fmt} is not one this version reads")
        if not 0 < segment <= MAX_SEGMENT_BYTES or size > self._max:
            raise errors.IntegrityError("the sealed header's sizes are out of bounds")
        self._header = bytes(self._buffer[:HEADER_BYTES])
        del self._buffer[:HEADER_BYTES]
        self._segment, self._size = segment, size
        self._count = _segments(size, segment)

    def _next_length(self) -> int:
        return min(self._segment, self._size - self._index * self._segment) + TAG_BYTES

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        out: list[bytes] = []
        if not self._header:
            if len(self._buffer) < HEADER_BYTES:
                return out
            self._read_header()
        while self._index < self._count and len(self._buffer) >= (n := self._next_length()):
            last = self._index == self._count - 1
            try:
                plain = self._aead.decrypt(_nonce(self._index), bytes(self._buffer[:n]),
                                           _aad(self._header, last))
            except InvalidTag:
                raise errors.IntegrityError(
                    f"segment {self._index} of the sealed object does not authenticate: "
                    "altered bytes, or not sealed with this archive key") from None
            del self._buffer[:n]
            self._index += 1
            self.plain_bytes += len(plain)
            out.append(plain)
        if self._index == self._count and self._buffer:
            raise errors.IntegrityError("bytes follow the last segment of the sealed object")
        return out

    def finish(self) -> None:
        if not self.done:
            raise errors.IntegrityError(
                f"the sealed object is truncated: {self.plain_bytes} of "
                f"{self._size if self._header else '?'} bytes opened")


def open_bytes(sealed: bytes, key: bytes, *, max_plain_bytes: int = 1 << 30) -> bytes:
    opener = Opener(key, max_plain_bytes=max_plain_bytes)
    parts = opener.feed(sealed)
    opener.finish()
    return b"".join(parts)
