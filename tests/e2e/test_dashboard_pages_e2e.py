"""The dashboard's pages over HTTP on a real server: the shell sends a visitor without a
session to /login, the login page and the static files are served with a strict content
policy, a static name never reaches past the shipped files (no listing, no traversal, no API
through /static/), and the form post of a token still opens a session for scripts."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from tests.support.daemons import ServerHandle, free_port, start_server, web_token
from tests.support.pki import TestPki

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Iterator[ServerHandle]:
    port = free_port()
    server = start_server(tmp_path_factory.mktemp("pages"), pki,
                          extra={"server": {"web_ui_port": port}})
    server.http_port = port
    yield server
    if server.daemon.running:
        server.daemon.terminate(10)


def _get(server: ServerHandle, path: str, headers: dict[str, str] | None = None,
         method: str = "GET", body: bytes | None = None
         ) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One raw request: the path is sent exactly as written (no client-side normalising)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, reply.headers, reply.read()
    finally:
        conn.close()


def test_the_shell_sends_a_visitor_without_a_session_to_login(web: ServerHandle) -> None:
    status, headers, _ = _get(web, "/")
    assert status == 302 and headers["Location"] == "/login"
    status, headers, _ = _get(web, "/", {"Cookie": "photonic_session=forged"})
    assert status == 302


def test_login_page_and_static_files_are_served_with_a_strict_policy(web: ServerHandle) -> None:
    status, headers, body = _get(web, "/login")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<label for="token">' in body and b"/static/js/login.js" in body
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    status, headers, body = _get(web, "/static/js/app.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert headers["X-Content-Type-Options"] == "nosniff" and b"import" in body
    assert _get(web, "/static/app.css")[1]["Content-Type"].startswith("text/css")


@pytest.mark.parametrize("path", [
    "/static/", "/static/js", "/static/js/", "/static/../pages.py", "/static/%2e%2e/pages.py",
    "/static/..%2f..%2fserver.py", "/static/js/../../pages.py", "/static//etc/passwd",
    "/static/%2fetc%2fpasswd", "/static/nothing.js", "/static/js/%00.js",
])
def test_a_static_name_reaches_only_the_shipped_files(web: ServerHandle, path: str) -> None:
    status, _, body = _get(web, path)
    assert status in (400, 401, 404), (path, status)
    assert b"import" not in body and b"root:" not in body and b"<li>" not in body


@pytest.mark.parametrize("path", ["/static/../api/v1/agents", "/static/%2e%2e/api/v1/agents",
                                  "/static/..%2fapi/v1/agents"])
def test_the_api_is_not_reachable_through_a_static_path(web: ServerHandle, path: str) -> None:
    status, _, body = _get(web, path)
    assert status in (400, 401, 404), (path, status)
    assert b"agents" not in body


def test_a_form_post_of_the_token_still_opens_a_session(web: ServerHandle) -> None:
    token = web_token(web)
    status, headers, body = _get(web, "/login", {
        "Content-Type": "application/x-www-form-urlencoded"}, "POST",
        f"token={token}".encode())
    assert status == 200 and "csrf_token" in json.loads(body)
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    status, _, body = _get(web, "/", {"Cookie": cookie})
    assert status == 200 and b'<script type="module" src="/static/js/app.js">' in body
