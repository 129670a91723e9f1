"""The numbered event ring, and the WebSocket's rule that a client too slow to take its
messages is dropped rather than buffered."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from photonic.server.events import EventHub, ServerEvent
from photonic.web import live
from photonic.web.server import WebServer

HANDSHAKE = (b"GET /api/v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\n\r\n")


def test_events_are_numbered_and_the_ring_is_bounded() -> None:
    hub = EventHub(ring_size=3)
    for i in range(5):
        hub.publish(ServerEvent("paused", f"a{i}"))
    assert hub.last_id == 5
    assert [n.event_id for n in hub.since(0)] == [3, 4, 5]
    assert [n.event.agent_id for n in hub.since(3)] == ["a3", "a4"]
    assert hub.since(5) == []


def test_a_waiting_reader_wakes_on_the_next_event() -> None:
    async def scenario() -> None:
        hub = EventHub()
        waiting = asyncio.create_task(hub.wait_since(0, 10))
        await asyncio.sleep(0)
        hub.publish(ServerEvent("paused", "laptop"))
        found = await asyncio.wait_for(waiting, 2)
        assert [n.event_id for n in found] == [1]
        assert await hub.wait_since(1, 0.01) == []

    asyncio.run(scenario())


def test_a_websocket_that_does_not_read_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that completes the handshake and then reads nothing: once the socket buffers
    are full the server's send waits, and after SEND_TIMEOUT_S the client is closed; the
    server holds nothing for it beyond the shared ring."""
    monkeypatch.setattr(live, "SEND_TIMEOUT_S", 0.5)

    async def scenario() -> None:
        hub = EventHub(ring_size=400)
        app = web.Application()
        app[live.HUB] = hub
        live.add_routes(app)
        server = WebServer(app, None)
        port = await server.start("127.0.0.1", 0)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(HANDSHAKE.replace(b"/api/v1/ws", b"/api/v1/ws?after=0"))
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        sockets = app[live.LIVE_SOCKETS]
        assert len(sockets) == 1
        for i in range(400):  # 400 x 16 KiB: far more than the socket buffers hold
            hub.publish(ServerEvent("file_committed", "laptop", detail=f"{i}" * 16384))
        async with asyncio.timeout(10):
            while sockets:
                await asyncio.sleep(0.05)
        writer.close()
        await server.stop()

    asyncio.run(scenario())
