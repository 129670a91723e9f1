"""The server's web endpoint (/metrics, /healthz, the API) under a flood of idle connections:
it holds a bounded number of them, so the server keeps file descriptors for gRPC and for the
probe."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from photonic.v1 import sync_pb2
from tests.chaos.hostile import sync_stub
from tests.chaos.tally import TALLY
from tests.support.daemons import ServerHandle, free_port, start_server
from tests.support.pki import TestPki

pytestmark = pytest.mark.chaos

IDLE_CONNECTIONS = 400
SPARE_DESCRIPTORS = 150  # what the server may open beyond its start-up set: fewer than the flood


@pytest.fixture
def web_server(tmp_path: Path, pki: TestPki, daemons: list[object]) -> ServerHandle:
    http_port = free_port()
    server = start_server(tmp_path / "server", pki, extra={"server": {"web_ui_port": http_port}})
    daemons.append(server.daemon)
    server.http_port = http_port
    return server


def _limit_descriptors(pid: int, spare: int) -> None:
    """Lowers the running server's descriptor limit to what it holds now plus spare, as on
    a host with a small `ulimit -n`."""
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + spare, hard))


@contextlib.contextmanager
def _idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """Up to count connections that send half a request line and then nothing (fewer when
    the server stops taking them: it is saturated)."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:
                break
            held.append(conn)
            conn.sendall(b"GET /metrics HTTP/1.1\r\n")
        yield held
    finally:
        for conn in held:
            conn.close()


def _http(port: int, request: bytes) -> bytes:
    """The whole answer to request (its request line; Host and Connection: close are added)."""
    request = request.replace(
        b"\r\n\r\n", b"\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(1 << 16):
            chunks.append(chunk)
    return b"".join(chunks)


def test_idle_http_connections_do_not_starve_grpc_or_the_health_probe(
        web_server: ServerHandle, pki: TestPki) -> None:
    """Four hundred connections to /metrics that never finish their request, against a
    server with room for 150 more descriptors: a new agent connection still gets its
    RegisterAgent and Heartbeat answered, and /healthz is still served, while every one of
    those connections is still open on the attacker's side."""
    assert web_server.daemon.proc is not None
    _limit_descriptors(web_server.daemon.proc.pid, SPARE_DESCRIPTORS)
    with _idle_connections(web_server.http_port, IDLE_CONNECTIONS):
        TALLY.hostile_messages += IDLE_CONNECTIONS
        channel, stub = sync_stub(web_server.endpoint, pki.agent_cert("laptop"),
                                  pki.agent_key("laptop"), pki.ca)
        try:
            stub.RegisterAgent(sync_pb2.RegisterAgentRequest(hostname="h"), timeout=4)
            stub.Heartbeat(sync_pb2.HeartbeatRequest(), timeout=4)
        except grpc.RpcError as exc:
            pytest.fail(f"the agent was not served during the flood: {exc.code()}")
        finally:
            channel.close()
        answer = _http(web_server.http_port, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b'"status": "ok"' in answer


def test_head_answers_with_headers_only(web_server: ServerHandle) -> None:
    """HEAD /metrics and HEAD /healthz get the headers GET would get (Content-Length of the
    body included) and no body."""
    for path in (b"/metrics", b"/healthz"):
        get = _http(web_server.http_port, b"GET " + path + b" HTTP/1.1\r\n\r\n")
        head = _http(web_server.http_port, b"HEAD " + path + b" HTTP/1.1\r\n\r\n")
        head_lines, _, body = head.partition(b"\r\n\r\n")
        assert body == b""
        assert head_lines.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Content-Length: 0" not in head_lines
        assert len(get.partition(b"\r\n\r\n")[2]) > 0
