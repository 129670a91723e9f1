"""Proof of possession: before the server links another agent's content into this agent's
library, this agent shows it holds the bytes, not merely their SHA-256 (which leaks easily:
logs, manifests, a shared photo's hash). The server picks a fresh nonce and a few random byte
ranges; the answer is SHA-256(nonce || those bytes). An honest agent reads a few KiB; one that
knows only the hash cannot answer. Both sides compute it here, from any positional reader."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Sequence

NONCE_BYTES = 16
RANGES = 3
RANGE_BYTES = 4096

ByteRanges = tuple[tuple[int, int], ...]
ReadAt = Callable[[int, int], bytes]
"""read_at(offset, length) -> exactly those bytes of the content."""


def new_challenge(size: int) -> tuple[bytes, ByteRanges]:
    """A fresh nonce and RANGES ranges spread over a content of `size` bytes (all of it when
    it is small), unpredictable to the agent."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    if size <= RANGES * RANGE_BYTES:
        return nonce, ((0, size),)
    span = size - RANGE_BYTES
    offsets = sorted(secrets.randbelow(span + 1) for _ in range(RANGES))
    return nonce, tuple((o, RANGE_BYTES) for o in offsets)


def proof_digest(nonce: bytes, ranges: Sequence[tuple[int, int]], read_at: ReadAt) -> bytes:
    digest = hashlib.sha256(nonce)
    for offset, length in ranges:
        data = read_at(offset, length)
        if len(data) != length:
            raise ValueError(f"read {len(data)} of {length} bytes at {offset}")
        digest.update(data)
    return digest.digest()


def proofs_match(expected: bytes, offered: bytes) -> bool:
    return hmac.compare_digest(expected, offered)


def pread_exactly(fd: int, offset: int, length: int) -> bytes:
    """length bytes of fd's file at offset (pread: no shared offset); fewer only at its end."""
    out = bytearray()
    while len(out) < length:
        chunk = os.pread(fd, length - len(out), offset + len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def file_reader(fd: int) -> ReadAt:
    """read_at over an open descriptor."""
    return functools.partial(pread_exactly, fd)
