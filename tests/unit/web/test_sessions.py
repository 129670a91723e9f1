"""The sessions a login opens, kept in the catalog: found by the cookie's digest only while
live, with their CSRF token; ended by expiry, by logout, by the removal of their token, and
(the oldest first) beyond the number kept."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from photonic.server.catalog import SqliteCatalog
from photonic.web.credentials import Session, TokenBook, create_token


def test_a_session_is_found_by_its_cookie_and_ends_at_logout(tmp_path: Path) -> None:
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    create_token(catalog, "ops")
    book = TokenBook(catalog)

    async def go() -> None:
        cookie, session = await book.open_session("ops")
        assert await book.session(cookie) == Session("ops", session.csrf)
        assert await book.session(cookie + "x") is None and await book.session("") is None
        await book.close_session(cookie)
        assert await book.session(cookie) is None
    asyncio.run(go())
    stored = sqlite3.connect(tmp_path / "catalog.db").execute(
        "SELECT COUNT(*) FROM web_sessions").fetchone()
    assert stored == (0,)
    catalog.close()


def test_expired_sessions_and_those_of_a_removed_token_are_refused(tmp_path: Path) -> None:
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    create_token(catalog, "ops")
    create_token(catalog, "intern")

    async def go() -> None:
        expired, _ = await TokenBook(catalog, ttl_s=-1).open_session("ops")
        assert await TokenBook(catalog).session(expired) is None
        live, _ = await TokenBook(catalog).open_session("intern")
        assert await TokenBook(catalog).session(live) is not None
        with sqlite3.connect(tmp_path / "catalog.db") as db:
            db.execute("DELETE FROM web_tokens WHERE name = 'intern'")
        assert await TokenBook(catalog).session(live) is None
    asyncio.run(go())
    catalog.close()


def test_beyond_the_number_kept_the_oldest_sessions_end(tmp_path: Path) -> None:
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    create_token(catalog, "ops")
    book = TokenBook(catalog, max_sessions=3)

    async def go() -> None:
        cookies = [(await book.open_session("ops"))[0] for _ in range(5)]
        alive = [await book.session(c) is not None for c in cookies]
        assert alive == [False, False, True, True, True]
    asyncio.run(go())
    catalog.close()
