"""Operating the dashboard, against a real server daemon: its live connections are counted in
/metrics by transport, and over HTTPS an admin client certificate is a credential."""

from __future__ import annotations

import asyncio
import re
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.daemons import (
    ServerHandle,
    catalog_rows,
    free_port,
    start_server,
    wait_until,
    web_token,
)
from tests.support.pki import TestPki

pytestmark = pytest.mark.e2e


@pytest.fixture
def local_web(tmp_path: Path, pki: TestPki) -> Iterator[tuple[ServerHandle, str]]:
    """A server with its dashboard on loopback (plain HTTP), and an admin token."""
    port = free_port()
    server = start_server(tmp_path / "server", pki, extra={"server": {"web_ui_port": port}})
    server.http_port = port
    try:
        token = web_token(server)
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


@pytest.fixture
def https_web(tmp_path: Path, pki: TestPki) -> Iterator[ServerHandle]:
    """A server whose dashboard is bound beyond loopback (0.0.0.0), so served over HTTPS."""
    port = free_port()
    server = start_server(tmp_path / "server", pki, extra={
        "server": {"web_ui_port": port, "web_ui_bind": "0.0.0.0"}})
    server.http_port = port
    try:
        yield server
    finally:
        server.daemon.terminate(10)


def _client_tls(pki: TestPki, agent_id: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))  # the server's SANs: 127.0.0.1
    if agent_id is not None:
        context.load_cert_chain(pki.agent_cert(agent_id), pki.agent_key(agent_id))
    return context


def _https(server: ServerHandle, context: ssl.SSLContext, method: str, path: str,
           **kwargs: Any) -> tuple[int, Any]:
    async def go() -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s, s.request(
                method, f"https://127.0.0.1:{server.http_port}{path}", ssl=context,
                **kwargs) as r:
            return r.status, (await r.json() if "json" in r.content_type else await r.text())
    return asyncio.run(go())


def test_an_admin_client_certificate_is_a_dashboard_credential(
        https_web: ServerHandle, pki: TestPki) -> None:
    """Over HTTPS, the admin certificate (admin scope in server.yaml) reads the API without a
    token; an agent's certificate (sync scope) is refused 403 saying it lacks the admin scope;
    no certificate and no token is 401. A POST with the admin certificate needs the CSRF token
    /api/v1/session answers for it, and is audited as cert:admin."""
    admin = _client_tls(pki, "admin")
    status, agents = _https(https_web, admin, "GET", "/api/v1/agents")
    assert status == 200, agents
    status, body = _https(https_web, _client_tls(pki, "laptop"), "GET", "/api/v1/agents")
    assert status == 403 and "'laptop' lacks the 'admin' scope" in body["error"], body
    status, body = _https(https_web, _client_tls(pki, None), "GET", "/api/v1/agents")
    assert status == 401, body

    pause = "/api/v1/agents/nobody/pause"
    status, body = _https(https_web, admin, "POST", pause, json={"paused": True})
    assert status == 403 and "X-CSRF-Token" in body["error"], body
    status, session = _https(https_web, admin, "GET", "/api/v1/session")
    assert status == 200 and session["name"] == "cert:admin" and session["csrf_token"]
    status, body = _https(https_web, admin, "POST", pause, json={"paused": True},
                          headers={"X-CSRF-Token": session["csrf_token"]})
    assert status == 404, body  # admitted: the agent is unknown
    rows = catalog_rows(https_web, "SELECT actor, action, target, result FROM audit ORDER BY id")
    assert ("cert:admin", "PauseSyncing", "nobody", "not_found") in rows
    assert ("cert:laptop", "web", "GET /api/v1/agents", "refused") in rows


def test_a_certificate_from_another_ca_is_refused_in_the_handshake(
        https_web: ServerHandle, pki: TestPki) -> None:
    """A client certificate the photonic CA did not sign never reaches the API."""
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(pki.rogue_cert, pki.rogue_key)
    with pytest.raises(aiohttp.ClientError):
        _https(https_web, context, "GET", "/api/v1/agents")
