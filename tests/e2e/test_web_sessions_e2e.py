"""Dashboard sessions live in the catalog: a browser's cookie still works after the server
restarts (it used to be logged out), keeps its CSRF token, and a logout ends it for good."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.support.daemons import Daemon, free_port, start_server, web_token
from tests.support.pki import TestPki

pytestmark = pytest.mark.e2e


def test_a_login_survives_a_server_restart_and_a_logout_ends_it(
        tmp_path: Path, pki: TestPki, daemons: list[Daemon]) -> None:
    port = free_port()
    server = start_server(tmp_path / "server", pki, extra={"server": {"web_ui_port": port}})
    daemons.append(server.daemon)
    server.http_port = port
    token = web_token(server, "ops")
    base = f"http://127.0.0.1:{port}"

    async def session_of(cookie: str) -> tuple[int, dict[str, str]]:
        async with aiohttp.ClientSession(cookies={"photonic_session": cookie}) as s, \
                s.get(base + "/api/v1/session") as r:
            return r.status, (await r.json() if r.status == 200 else {})

    async def login() -> tuple[str, str]:
        # unsafe: the jar keeps the cookies of an IP address such as 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s, \
                s.post(base + "/login", data={"token": token}) as r:
            assert r.status == 200
            return r.cookies["photonic_session"].value, str((await r.json())["csrf_token"])

    async def logout(cookie: str, csrf: str) -> int:
        async with aiohttp.ClientSession(cookies={"photonic_session": cookie}) as s, s.post(
                base + "/api/v1/logout", headers={"X-CSRF-Token": csrf}) as r:
            return r.status

    cookie, csrf = asyncio.run(login())
    other, _ = asyncio.run(login())
    assert asyncio.run(session_of(cookie)) == (200, {"name": "ops", "csrf_token": csrf})
    server.daemon.terminate()
    server.start()
    assert asyncio.run(session_of(cookie)) == (200, {"name": "ops", "csrf_token": csrf})
    assert asyncio.run(logout(cookie, csrf)) == 200
    assert asyncio.run(session_of(cookie))[0] == 401, "the cookie works after its logout"
    assert asyncio.run(session_of(other))[0] == 200, "a logout ended another session"
    assert asyncio.run(session_of("forged"))[0] == 401
