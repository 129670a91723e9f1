"""The server's health, end to end: /healthz and the gRPC health service agree, go unhealthy
when the store stops taking writes and come back when it does again."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from photonic.tls import channel_credentials
from tests.support.daemons import ServerHandle, free_port, start_server, wait_until
from tests.support.pki import TestPki

pytestmark = pytest.mark.e2e

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def web_server(tmp_path: Path, pki: TestPki) -> Iterator[ServerHandle]:
    port = free_port()
    handle = start_server(tmp_path / "server", pki, extra={
        "server": {"web_ui_port": port, "web_ui_bind": "127.0.0.1"}})
    handle.http_port = port
    yield handle
    handle.daemon.terminate(10)


def _healthz(server: ServerHandle) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{server.http_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return int(reply.status), json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return int(e.code), json.loads(e.read())


def _grpc_status(server: ServerHandle) -> int:
    pki = server.pki
    creds = channel_credentials(pki.agent_cert("admin"), pki.agent_key("admin"), pki.ca)
    with grpc.secure_channel(server.endpoint, creds) as channel:
        stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        return int(reply.status)


def _block_partial(storage: Path) -> None:
    """Root ignores permission bits, so chmod would prove nothing here: the partial/ folder is
    moved aside and a plain file takes its name. Every create beneath it then fails with
    ENOTDIR, for root too, exactly as an upload's first write would."""
    (storage / "partial").rename(storage / "partial.away")
    (storage / "partial").write_bytes(b"not a folder")


def _unblock_partial(storage: Path) -> None:
    (storage / "partial").unlink()
    (storage / "partial.away").rename(storage / "partial")


@pytest.mark.local_objects("makes the local partial/ folder unwritable")
def test_an_unwritable_store_turns_healthz_503_and_grpc_not_serving_then_back(
        web_server: ServerHandle) -> None:
    """/healthz answers 200 with every check; with the store's partial/ folder unable to take
    a file it answers 503 naming store_writable, and the gRPC health service says
    NOT_SERVING; with the folder back, 200 and SERVING again."""
    status, body = _healthz(web_server)
    assert status == 200, body
    assert body["catalog_reachable"] and body["store_writable"] and body["storage_ok"]
    assert body["problems"] == {} and "jobs_pending" in body and "last_sync_unix_ms" in body
    assert _grpc_status(web_server) == SERVING

    _block_partial(web_server.storage)
    try:
        status, body = _healthz(web_server)
        assert status == 503, body
        assert body["status"] == "unhealthy" and not body["store_writable"]
        assert "not a directory" in body["problems"]["store_writable"].lower()
        assert str(web_server.storage) not in json.dumps(body)  # no server paths
        wait_until(lambda: _grpc_status(web_server) == NOT_SERVING, 20, 0.2,
                   "gRPC health NOT_SERVING")
    finally:
        _unblock_partial(web_server.storage)

    status, body = _healthz(web_server)
    assert status == 200, body
    wait_until(lambda: _grpc_status(web_server) == SERVING, 20, 0.2, "gRPC health SERVING")
    assert web_server.daemon.log().count("event=health_changed") == 2
