"""Operating the dashboard, against a real server daemon: its live connections are counted in
/metrics by transport, and over HTTPS an admin client certificate is a credential."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.daemons import ServerHandle, free_port, run_cli, start_server, wait_until
from tests.support.pki import TestPki

pytestmark = pytest.mark.e2e


@pytest.fixture
def local_web(tmp_path: Path, pki: TestPki) -> Iterator[tuple[ServerHandle, str]]:
    """A server with its dashboard on loopback (plain HTTP), and an admin token."""
    port = free_port()
    server = start_server(tmp_path / "server", pki, extra={"server": {"web_ui_port": port}})
    server.http_port = port
    try:
        token = run_cli("web", "token", "create", "--config", str(server.config_path),
                        check=True).stdout.strip().splitlines()[-1]
        yield server, token
    finally:
        server.daemon.terminate(10)


def web_clients(port: int) -> dict[str, float]:
    """photonic_web_clients by transport, from a scrape of /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(
        r'^photonic_web_clients\{transport="([a-z]+)"\} ([0-9.e+]+)$', text, re.M)}


def test_web_clients_counts_open_websockets_and_long_polls(
        local_web: tuple[ServerHandle, str]) -> None:
    """Before any client the gauge shows 0 for both transports; with one WebSocket and one
    long-poll open a scrape shows 1 and 1; once the WebSocket is closed and the long-poll has
    answered, 0 and 0."""
    server, token = local_web
    base = f"http://127.0.0.1:{server.http_port}"
    headers = {"Authorization": f"Bearer {token}"}
    assert web_clients(server.http_port) == {"websocket": 0.0, "longpoll": 0.0}

    async def go() -> None:
        async with aiohttp.ClientSession(headers=headers) as s:
            poll = asyncio.create_task(_long_poll(s, f"{base}/api/v1/events?timeout=3"))
            async with s.ws_connect(f"{base}/api/v1/ws") as sock:
                await asyncio.to_thread(
                    wait_until, lambda: web_clients(server.http_port) == {
                        "websocket": 1.0, "longpoll": 1.0}, 20, 0.1, "1 websocket, 1 longpoll")
                await sock.close()
            assert await poll == 200

    asyncio.run(go())
    wait_until(lambda: web_clients(server.http_port) == {"websocket": 0.0, "longpoll": 0.0},
               20, 0.1, "no live clients")


async def _long_poll(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as reply:
        await reply.read()
        return reply.status
