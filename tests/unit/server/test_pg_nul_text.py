"""PostgreSQL text holds no NUL: photonic's connections turn each NUL of a str parameter into
U+FFFD (pg_db.connect), so a hostile client's stray byte is stored or matched as text instead
of failing its whole call with an internal error. Found by the SyncBatch fuzzer in the
scale-out run of the chaos suite (PHOTONIC_TEST_BACKEND=scaleout)."""

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
