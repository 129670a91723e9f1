"""Two "servers" of shared state for each interface's tests: for the in-process backend, one
object (two servers cannot share it: one process's streams share it); for PostgreSQL, two
objects on one fresh database of the throwaway cluster, each with its own sessions and
listener, as two server processes have."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from photonic.server.pg_db import connect
from photonic.server.shared_state import SharedState, make_shared_state


@pytest.fixture(params=["local", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str | None:
    """None: in this process; else the URL of a fresh PostgreSQL database."""
    if request.param == "local":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


@asynccontextmanager
async def two_servers(url: str | None) -> AsyncIterator[tuple[SharedState, SharedState]]:
    """Started, stopped at the end (on the running loop)."""
    a = make_shared_state(url)
    b = make_shared_state(url) if url else a
    await a.start()
    if b is not a:
        await b.start()
    try:
        yield a, b
    finally:
        await a.stop()
        if b is not a:
            await b.stop()


def terminate_holder_of(url: str, key: int) -> int:
    """Ends the session holding the advisory lock on key, as when its server is SIGKILLed
    (the kernel closes its socket; PostgreSQL ends the session): returns how many ended."""
    from photonic.server.shared.pg_keys import lock_ids
    classid, objid = lock_ids(key)
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND granted AND classid = %s AND objid = %s AND objsubid = 1",
            (classid, objid)).fetchall()
    return sum(1 for r in rows if r[0])


def terminate_claim_holder(url: str, sha256: str) -> int:
    """Ends the claims session of the server holding sha256's upload claim, as when that
    server is SIGKILLed: returns how many sessions ended."""
    with connect(url) as conn:
        row = conn.execute("SELECT holder FROM upload_claims WHERE content = %s",
                           (sha256,)).fetchone()
    return 0 if row is None else terminate_holder_of(url, int(row[0]))


def waiting_for(url: str, key: int) -> int:
    """Sessions waiting (not granted) for the advisory lock on key."""
    from photonic.server.shared.pg_keys import lock_ids
    classid, objid = lock_ids(key)
    with connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = %s AND objid = %s AND objsubid = 1", (classid, objid)).fetchone()
    return int(row[0]) if row else 0
