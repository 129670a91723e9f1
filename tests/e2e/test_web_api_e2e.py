"""The web API of a real server daemon: a token made by `photonic web token create`, Bearer
and cookie access (with CSRF), admin operations that change the catalog and are audited as
web:<name>, jobs, the library listing, and live events by long-poll and WebSocket."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.daemons import (
    Daemon,
    ServerHandle,
    catalog_rows,
    free_port,
    make_agent,
    start_server,
    web_token,
)
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import library_sha

pytestmark = pytest.mark.e2e


class Web:
    def __init__(self, server: ServerHandle, token: str) -> None:
        self.server = server
        self.base = f"http://127.0.0.1:{server.http_port}"
        self.token = token

    def call(self, method: str, path: str, *, bearer: bool = True,
             **kwargs: Any) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            headers = dict(kwargs.pop("headers", {}))
            if bearer:
                headers["Authorization"] = f"Bearer {self.token}"
            async with aiohttp.ClientSession() as s, s.request(
                    method, self.base + path, headers=headers, **kwargs) as r:
                ctype = r.headers.get("Content-Type", "")
                body = await r.json() if "json" in ctype else await r.text()
                return r.status, body
        return asyncio.run(go())

    def audit(self) -> list[tuple[str, str, str, str]]:
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in catalog_rows(
            self.server, "SELECT actor, action, target, result FROM audit ORDER BY id")]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Iterator[Web]:
    root = tmp_path_factory.mktemp("web")
    port = free_port()
    server = start_server(root / "server", pki, extra={"server": {"web_ui_port": port}})
    server.http_port = port
    try:
        token = web_token(server, "ops")
        agent = make_agent(root / "laptop", pki, "laptop", server,
                           extra={"sync": {"conflict_resolution": "manual"}})
        photo = make_jpeg(agent.watches["photos"] / "2024" / "IMG_1.jpg", seed=5)
        make_jpeg(agent.watches["photos"] / "top.jpg", seed=6)
        assert agent.once()["files_uploaded"] == 2
        shutil.rmtree(agent.buffer)  # a lost index: the rewrite below is parked as a conflict
        make_jpeg(photo, seed=7)
        assert agent.once()["conflicts"] == 1
        yield Web(server, token)
    finally:
        if server.daemon.running:
            server.daemon.terminate(10)


def test_no_credential_is_refused_and_a_bearer_token_works(web: Web) -> None:
    assert web.call("GET", "/api/v1/agents", bearer=False)[0] == 401
    bad = web.call("GET", "/api/v1/agents", bearer=False,
                   headers={"Authorization": "Bearer nope"})
    assert bad[0] == 401
    status, body = web.call("GET", "/api/v1/agents")
    assert status == 200 and [a["agent_id"] for a in body["agents"]] == ["laptop"]
    assert web.call("GET", "/healthz", bearer=False)[0] == 200


def test_login_sets_a_strict_cookie_and_a_post_without_csrf_is_refused(web: Web) -> None:
    async def go() -> None:
        # unsafe: the jar keeps cookies of an IP address such as 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.post(web.base + "/login", data={"token": web.token}) as r:
                assert r.status == 200
                cookie = r.headers["Set-Cookie"]
                csrf = (await r.json())["csrf_token"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            async with s.get(web.base + "/api/v1/session") as r:
                assert r.status == 200 and (await r.json())["name"] == "ops"
            async with s.post(web.base + "/api/v1/agents/laptop/pause",
                              json={"paused": True}) as r:
                assert r.status == 403
            async with s.post(web.base + "/api/v1/agents/laptop/pause", json={"paused": False},
                              headers={"X-CSRF-Token": "guess"}) as r:
                assert r.status == 403
            async with s.post(web.base + "/api/v1/agents/laptop/pause", json={"paused": False},
                              headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 200
    asyncio.run(go())


def test_pause_and_resolve_change_the_catalog_and_are_audited(web: Web) -> None:
    status, body = web.call("POST", "/api/v1/agents/laptop/pause", json={"paused": True})
    assert (status, body["paused"]) == (200, True)
    assert web.call("GET", "/api/v1/agents/laptop")[1]["paused"] is True
    web.call("POST", "/api/v1/agents/laptop/pause", json={"paused": False})
    conflicts = web.call("GET", "/api/v1/conflicts")[1]["conflicts"]
    assert [c["rel_path"] for c in conflicts] == ["2024/IMG_1.jpg"]
    status, body = web.call("POST", "/api/v1/conflicts/resolve",
                            json={"ids": [conflicts[0]["id"]], "keep": "incoming"})
    assert (status, body["resolved"]) == (200, [conflicts[0]["id"]])
    assert web.call("GET", "/api/v1/conflicts")[1]["conflicts"] == []
    audit = web.audit()
    assert ("web:ops", "PauseSyncing", "laptop", "ok") in audit
    assert ("web:ops", "ResolveConflicts", str(conflicts[0]["id"]), "ok") in audit


def test_submit_list_and_cancel_a_job(web: Web) -> None:
    status, job = web.call("POST", "/api/v1/jobs",
                           json={"kind": "bgremove", "library_paths": ["laptop/photos/top.jpg"]})
    assert status == 201, job
    assert job["state"] == "JOB_STATE_PENDING" and job["submitter"] == "web:ops"
    assert job["jobId"] in [j["jobId"] for j in web.call("GET", "/api/v1/jobs")[1]["jobs"]]
    assert web.call("GET", f"/api/v1/jobs/{job['jobId']}")[1]["jobId"] == job["jobId"]
    status, cancelled = web.call("POST", f"/api/v1/jobs/{job['jobId']}/cancel")
    assert status == 200 and cancelled["state"] == "JOB_STATE_CANCELLED"
    assert web.call("POST", "/api/v1/jobs", json={"kind": "bgremove", "nope": 1})[0] == 400
    assert ("web:ops", "CancelJob", job["jobId"], "ok") in web.audit()


def test_the_library_lists_one_level_with_library_paths(web: Web) -> None:
    assert web.call("GET", "/api/v1/library")[1]["folders"] == ["laptop"]
    assert web.call("GET", "/api/v1/library?folder=laptop")[1]["folders"] == ["photos"]
    level = web.call("GET", "/api/v1/library?folder=laptop/photos")[1]
    assert level["folders"] == ["2024"]
    assert [(p["name"], p["library_path"]) for p in level["photos"]] == [
        ("top.jpg", "laptop/photos/top.jpg")]
    inner = web.call("GET", "/api/v1/library?folder=laptop/photos/2024/")[1]
    assert inner["photos"][0]["sha256"] == library_sha(web.server, "laptop", "photos",
                                                       "2024/IMG_1.jpg")


@pytest.mark.parametrize("path", [
    "/thumb/../../etc/passwd", "/thumb/%2e%2e/%2e%2e/etc/passwd", "/api/v1/../../etc/passwd",
    "/api/v1/library?folder=../../etc", "/api/v1/library?folder=laptop/photos/../../..",
    "/api/v1/library?folder=/etc/passwd", "/api/v1/library?folder=laptop/photos/%00",
    "/api/v1/jobs/..%2f..%2fetc%2fpasswd", "/api/v1/jobs/000000000000000000aa",
    "/api/v1/agents/root", "/api/v1/library?folder=laptop/nothing",
])
def test_traversal_and_guessed_ids_reach_nothing(web: Web, path: str) -> None:
    status, body = web.call("GET", path)
    assert status in (400, 404), (status, body)
    assert "root:" not in str(body)


def test_long_poll_and_websocket_carry_the_same_events_and_resume(web: Web) -> None:
    start = web.call("GET", "/api/v1/events?timeout=0")[1]["last_id"]
    for paused in (True, False, True, False):
        web.call("POST", "/api/v1/agents/laptop/pause", json={"paused": paused})
    polled: list[dict[str, Any]] = []
    after = start
    for _ in range(10):  # a hub shared through PostgreSQL may answer them in two polls
        answer = web.call("GET", f"/api/v1/events?after={after}&timeout=5")[1]
        polled += answer["events"]
        after = answer["last_id"]
        if len(polled) >= 4:
            break
    assert [(e["kind"], e["detail"]) for e in polled] == [
        ("paused", "True"), ("paused", "False"), ("paused", "True"), ("paused", "False")]

    async def ws(after: int, count: int) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {web.token}"}
        async with aiohttp.ClientSession() as s, s.ws_connect(
                f"{web.base}/api/v1/ws?after={after}", headers=headers) as sock:
            hello = await sock.receive_json(timeout=5)  # the epoch, before any event
            assert (hello["kind"], hello["last_id"], hello["reset"]) == ("hello", after, False)
            return [await sock.receive_json(timeout=5) for _ in range(count)]

    assert asyncio.run(ws(start, 4)) == polled
    assert asyncio.run(ws(polled[1]["id"], 2)) == polled[2:]


def _non_loopback_address() -> str | None:
    """An IPv4 address of this machine beyond loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent; this picks the outgoing address
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_beyond_loopback_the_api_is_https_only(
        tmp_path: Path, pki: TestPki, daemons: list[Daemon]) -> None:
    """Bound to a non-loopback address the web layer speaks only HTTPS with the server's
    certificate (a plain request gets nothing), and the login cookie is Secure."""
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    port = free_port()
    server = start_server(tmp_path / "server", pki, extra={
        "server": {"web_ui_port": port, "web_ui_bind": address}})
    daemons.append(server.daemon)
    token = web_token(server)
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.check_hostname = False  # the test certificate names localhost, not this address

    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"https://{address}:{port}/api/v1/agents", ssl=context,
                             headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200
            async with s.post(f"https://{address}:{port}/login", ssl=context,
                              data={"token": token}) as r:
                assert r.status == 200 and "Secure" in r.headers["Set-Cookie"]
            with pytest.raises(aiohttp.ClientError):
                async with s.get(f"http://{address}:{port}/healthz") as r:
                    await r.read()

    asyncio.run(go())
