"""The agent's /metrics and /healthz over real sockets: aiohttp on a loop of its own, as in
the agent; GET and HEAD only, a failing or unhealthy report is 503, and a flood of idle
connections neither locks the probe out nor holds more than the cap."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry, Counter

from photonic.agent.metrics_service import MetricsEndpointService
from photonic.web.site import MAX_CONNECTIONS
from tests.support.daemons import wait_until


@dataclass
class Running:
    port: int
    report: dict[str, object] = field(default_factory=lambda: {"ok": True, "state": "idle"})
    fail: bool = False


@pytest.fixture
def endpoint() -> Iterator[Running]:
    registry = CollectorRegistry()
    Counter("photonic_test_things_total", "Things", registry=registry).inc(3)
    running = Running(0)

    async def health() -> dict[str, object]:
        if running.fail:
            raise RuntimeError("the buffer database is gone")
        return running.report

    service = MetricsEndpointService(registry, health, 0)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()

    async def serve() -> None:
        await service.start()
        running.port = service.bound_port
        ready.set()
        await service.run(stop)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the endpoint did not start"
    yield running
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


def http(port: int, request: bytes) -> bytes:
    """The whole answer to one request sent with Connection: close."""
    request = request.replace(b"\r\n\r\n", b"\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(1 << 16):
            chunks.append(chunk)
    return b"".join(chunks)


def split(answer: bytes) -> tuple[str, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def test_metrics_and_health_are_served(endpoint: Running) -> None:
    """GET /metrics is Prometheus text with the registry's counters; GET /healthz is the
    report as JSON, 200 while it is ok."""
    head, body = split(http(endpoint.port, b"GET /metrics HTTP/1.1\r\n\r\n"))
    assert head.startswith("HTTP/1.1 200 OK") and "text/plain; version=0.0.4" in head
    assert b"photonic_test_things_total 3.0" in body
    head, body = split(http(endpoint.port, b"GET /healthz HTTP/1.1\r\n\r\n"))
    assert head.startswith("HTTP/1.1 200 OK") and "application/json" in head
    assert json.loads(body) == {"ok": True, "state": "idle"}


def test_an_unhealthy_or_failing_report_is_503(endpoint: Running) -> None:
    """ok: false answers 503 with the report; a report that raises answers 503 without the
    exception's text or class."""
    endpoint.report = {"ok": False, "problem": "buffer takes no write"}
    head, body = split(http(endpoint.port, b"GET /healthz HTTP/1.1\r\n\r\n"))
    assert head.startswith("HTTP/1.1 503") and json.loads(body)["ok"] is False
    endpoint.fail = True
    head, body = split(http(endpoint.port, b"GET /healthz HTTP/1.1\r\n\r\n"))
    assert head.startswith("HTTP/1.1 503") and body == b"handler failed\n"


def test_head_other_methods_and_paths(endpoint: Running) -> None:
    """HEAD gets GET's headers (its Content-Length) and no body; POST is 405; another path is
    404."""
    get_head, get_body = split(http(endpoint.port, b"GET /healthz HTTP/1.1\r\n\r\n"))
    head, body = split(http(endpoint.port, b"HEAD /healthz HTTP/1.1\r\n\r\n"))
    assert head.startswith("HTTP/1.1 200 OK") and body == b""
    assert f"Content-Length: {len(get_body)}" in head and "Content-Length" in get_head
    post = http(endpoint.port, b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert post.startswith(b"HTTP/1.1 405")
    assert http(endpoint.port, b"GET /secrets HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404")


def test_two_requests_on_one_connection(endpoint: Running) -> None:
    """A scraper that keeps its connection alive gets both answers on it."""
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as conn:
        for _ in range(2):
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = b""
            while b"}" not in answer:
                answer += conn.recv(1 << 16)
            assert answer.startswith(b"HTTP/1.1 200 OK")


def test_idle_connections_cannot_lock_the_probe_out(endpoint: Running) -> None:
    """Three times the cap of connections that send half a request line and then nothing:
    /healthz is still answered, and the oldest idle ones were closed by the agent (it holds
    at most MAX_CONNECTIONS)."""
    held: list[socket.socket] = []
    try:
        for _ in range(3 * MAX_CONNECTIONS):
            conn = socket.create_connection(("127.0.0.1", endpoint.port), timeout=5)
            conn.sendall(b"GET /metrics HTTP/1.1\r\n")
            held.append(conn)
        head, _ = split(http(endpoint.port, b"GET /healthz HTTP/1.1\r\n\r\n"))
        assert head.startswith("HTTP/1.1 200 OK")

        def closed_by_agent() -> int:
            count = 0
            for conn in held:
                conn.setblocking(False)
                try:
                    count += conn.recv(1) == b""
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    count += 1
            return count

        wait_until(lambda: closed_by_agent() >= len(held) - MAX_CONNECTIONS, 10, 0.1,
                   "the oldest idle connections dropped")
    finally:
        for conn in held:
            conn.close()
