"""The sessions a login opens, kept in the catalog (either engine): found by the cookie's
digest only while live, with their CSRF token; ended by expiry, by logout, by the removal of
their token, and (the oldest first) beyond the number kept; seen by a second server on the
same catalog."""

from __future__ import annotations

import asyncio
from pathlib import Path

from photonic.web.credentials import Session, TokenBook, create_token
from tests.support.catalogs import Catalogs, table_rows


def test_a_session_is_found_by_its_cookie_and_ends_at_logout(
        tmp_path: Path, catalogs: Catalogs) -> None:
    url = catalogs.url(tmp_path)
    catalog = catalogs.open(url)
    create_token(catalog, "ops")
    book = TokenBook(catalog)
    other_server = TokenBook(catalogs.open(url))

    async def go() -> None:
        cookie, session = await book.open_session("ops")
        assert await book.session(cookie) == Session("ops", session.csrf)
        assert await other_server.session(cookie) == Session("ops", session.csrf)
        assert await book.session(cookie + "x") is None and await book.session("") is None
        await other_server.close_session(cookie)
        assert await book.session(cookie) is None
    asyncio.run(go())
    assert table_rows(catalog, "SELECT COUNT(*) FROM web_sessions") == [(0,)]


def test_expired_sessions_and_those_of_a_removed_token_are_refused(
        tmp_path: Path, catalogs: Catalogs) -> None:
    catalog = catalogs.new(tmp_path)
    create_token(catalog, "ops")
    create_token(catalog, "intern")

    async def go() -> None:
        expired, _ = await TokenBook(catalog, ttl_s=-1).open_session("ops")
        assert await TokenBook(catalog).session(expired) is None
        live, _ = await TokenBook(catalog).open_session("intern")
        assert await TokenBook(catalog).session(live) is not None
        # no command removes a token yet: as one would
        with catalog._sql_tx() as c:  # type: ignore[attr-defined]
            c.execute("DELETE FROM web_tokens WHERE name = 'intern'")
        assert await TokenBook(catalog).session(live) is None
    asyncio.run(go())


def test_beyond_the_number_kept_the_oldest_sessions_end(
        tmp_path: Path, catalogs: Catalogs) -> None:
    catalog = catalogs.new(tmp_path)
    create_token(catalog, "ops")
    book = TokenBook(catalog, max_sessions=3)

    async def go() -> None:
        cookies = [(await book.open_session("ops"))[0] for _ in range(5)]
        alive = [await book.session(c) is not None for c in cookies]
        assert alive == [False, False, True, True, True]
    asyncio.run(go())
