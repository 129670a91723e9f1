"""Shared state across servers (issue 20), with real daemons over real mutual TLS and a real
throwaway PostgreSQL 15: two servers on one PostgreSQL catalog (catalog.url; the job queue
and the shared state follow it) share one event hub, so the dashboard's long-poll on server B
reports the photo an agent synced to server A, under the same id and epoch as A gives it, and
that id still resumes the client on B after B restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import (
    Daemon,
    ServerHandle,
    free_port,
    make_agent,
    sha256_of,
    start_server,
    web_get,
    web_token,
)
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki

pytestmark = pytest.mark.e2e

POLL_S = 20


def _server(root: Path, pki: TestPki, pg_url: str, daemons: list[Daemon]) -> ServerHandle:
    http_port = free_port()
    handle = start_server(root, pki, extra={
        "server": {"web_ui_port": http_port},
        "catalog": {"url": pg_url},
        "agents": {"admin": {"scopes": ["admin"]}, "laptop": {"scopes": ["sync"]}}})
    handle.http_port = http_port
    daemons.append(handle.daemon)
    return handle


def _poll_until(server: ServerHandle, token: str, after: int, epoch: str,
                wanted: str) -> dict[str, Any]:
    """Long-polls server's /api/v1/events from after until a file_committed for wanted."""
    for _ in range(10):
        answer = web_get(server, f"/api/v1/events?after={after}&epoch={epoch}"
                                 f"&timeout={POLL_S}", token)
        assert answer["epoch"] == epoch and not answer["reset"], answer
        for message in answer["events"]:
            if message["kind"] == "file_committed" and message["sha256"] == wanted:
                return dict(message)
        after = answer["last_id"]
    raise AssertionError(f"no file_committed for {wanted} on {server.endpoint}")


def test_a_long_poll_on_server_b_sees_a_photo_synced_to_server_a(
        tmp_path: Path, pki: TestPki, pg_url: str, daemons: list[Daemon]) -> None:
    """The agent syncs to A only; B's long-poll (waiting after B's last id) answers its
    file_committed; A answers the same event with the same id and epoch; and after B
    restarts, a client resuming on B just before that id is answered it again, not reset."""
    a = _server(tmp_path / "a", pki, pg_url, daemons)
    b = _server(tmp_path / "b", pki, pg_url, daemons)
    token_a, token_b = web_token(a, "poll-a"), web_token(b, "poll-b")  # one catalog
    start = web_get(b, "/api/v1/events?timeout=0", token_b)
    assert web_get(a, "/api/v1/events?timeout=0", token_a)["epoch"] == start["epoch"]
    agent = make_agent(tmp_path / "laptop", pki, "laptop", a)
    photo = make_jpeg(agent.watches["photos"] / "IMG_0001.jpg", seed=20)
    sha = sha256_of(photo)
    assert agent.once()["files_uploaded"] == 1

    on_b = _poll_until(b, token_b, start["last_id"], start["epoch"], sha)
    on_a = _poll_until(a, token_a, start["last_id"], start["epoch"], sha)
    assert on_a == on_b
    assert (on_b["agent_id"], on_b["relative_path"]) == ("laptop", "IMG_0001.jpg")
    assert "event=file_committed" not in b.daemon.log()  # synced to A only

    assert b.daemon.terminate() == 0
    b.start()
    again = _poll_until(b, token_b, on_b["id"] - 1, start["epoch"], sha)
    assert again == on_b
