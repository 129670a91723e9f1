"""Advisory-lock keys: PostgreSQL's advisory locks take one 64-bit integer, so each thing
locked is named by 8 bytes of a SHA-256: a library path's key is a hash of (agent, watch,
path). (Upload claims are rows, each server's claims session holding one random key:
pg_claims.) Two things sharing a key (odds of 2^-64 a pair) only
make one of them wait for the other: never a wrong answer."""

from __future__ import annotations

import hashlib

PathKey = tuple[str, str, str]
"""(agent id, watch name, library-relative path): what the library lock serialises."""

WHOLE_LIBRARY = -0x7068_6F74_6F6E_6963  # "photonic", negated: not the first bytes of a hash
"""The key every path holder takes shared, and a whole-library holder exclusive."""
EVENTS_ORDER = -0x7068_6F74_6576_6E74  # "photevnt", negated
"""Held by an event insert until its commit, so ids become visible in the order given."""


def _signed64(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big", signed=True)


def path_key(key: PathKey) -> int:
    return _signed64(hashlib.sha256("\0".join(key).encode("utf-8", "surrogatepass")).digest())


def lock_ids(key: int) -> tuple[int, int]:
    """(classid, objid) under which pg_locks shows an advisory lock on a 64-bit key."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF
