"""What PostgreSQL cannot hold reaches a client as text or a refusal, never an internal
error. Its text holds no NUL: photonic's connections turn each NUL of a str parameter into
U+FFFD (pg_db.connect), so a hostile client's stray byte is stored or matched as text (found
by the SyncBatch fuzzer in the scale-out chaos run); a full lock table is a limit."""

from __future__ import annotations

import asyncio

import pytest


def test_a_nul_in_a_parameter_is_stored_and_matched_as_a_replacement_character(
        pg_url: str) -> None:
    """Inserted in text and binary parameters, read back with U+FFFD; a lookup by the NUL
    form finds the row (the same conversion applies), and the async connection does the same."""
    pytest.importorskip("psycopg", reason="psycopg missing: pip install -e '.[dev]'")
    from photonic.server.pg_db import connect, connect_async
    with connect(pg_url) as conn:
        conn.execute("CREATE TABLE t (v TEXT NOT NULL)")
        conn.execute("INSERT INTO t VALUES (%s), (%b)", ("a\x00b", "\x00"))
        assert sorted(r[0] for r in conn.execute("SELECT v FROM t")) == ["a\ufffdb", "\ufffd"]
        assert conn.execute("SELECT count(*) FROM t WHERE v = %s", ("a\x00b",)).fetchone() \
            == (1,)

    async def read_async() -> list[str]:
        aconn = await connect_async(pg_url)
        try:
            cur = await aconn.execute("SELECT %s::text", ("x\x00",))
            row = await cur.fetchone()
            return [str(row[0])] if row else []
        finally:
            await aconn.close()

    assert asyncio.run(read_async()) == ["x\ufffd"]


def test_a_full_lock_table_is_a_limit_not_an_unreachable_database() -> None:
    """PostgreSQL's "out of shared memory" (SQLSTATE 53200: its lock table full, as six
    hostile streams' upload claims made it in the scale-out chaos run) is LimitExceeded
    (RESOURCE_EXHAUSTED, retried later), not "unreachable", and names no URL or socket. (The
    error is raised here as psycopg raises it: filling the session cluster's real lock table
    would refuse the other tests' connections too.)"""
    psycopg = pytest.importorskip("psycopg", reason="psycopg missing: pip install -e '.[dev]'")
    from photonic.errors import LimitExceeded
    from photonic.server.pg_db import unreachable_as_transient
    url = "postgresql://photonic:secret@/catalog?host=/tmp/pg-sock&port=5432"
    with pytest.raises(LimitExceeded) as refused, unreachable_as_transient(url):
        raise psycopg.errors.OutOfMemory("out of shared memory")
    assert "/tmp/" not in str(refused.value) and "postgresql://" not in str(refused.value)
