"""The numbered event ring and its epoch (a client of a previous process is told to reset),
the long-poll's answer, and the WebSocket's rule that a client too slow to take its messages
is dropped rather than buffered."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from aiohttp import web

from photonic.server.events import EventHub, LocalEventHub, ServerEvent
from photonic.web import access, live
from photonic.web.server import WebServer

HANDSHAKE = (b"GET /api/v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\n\r\n")


def test_events_are_numbered_and_the_ring_is_bounded() -> None:
    hub = LocalEventHub(ring_size=3)
    for i in range(5):
        hub.publish(ServerEvent("paused", f"a{i}"))
    assert hub.last_id == 5
    assert [n.event_id for n in hub.since(0)] == [3, 4, 5]
    assert [n.event.agent_id for n in hub.since(3)] == ["a3", "a4"]
    assert hub.since(5) == []


def test_a_waiting_reader_wakes_on_the_next_event() -> None:
    async def scenario() -> None:
        hub = LocalEventHub()
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
        hub = LocalEventHub(ring_size=400)
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


def test_each_hub_has_its_own_epoch() -> None:
    """Two processes (two hubs) never share an epoch, so a client can tell their ids apart."""
    assert LocalEventHub().epoch != LocalEventHub().epoch
    assert LocalEventHub(epoch="e1").epoch == "e1"


def test_resuming_within_the_epoch_continues_after_the_id() -> None:
    hub = LocalEventHub(epoch="now")
    for i in range(3):
        hub.publish(ServerEvent("paused", f"a{i}"))
    assert hub.resume_point(1, "now") == (1, False)
    assert hub.resume_point(1, None) == (1, False)  # an older client, without an epoch
    assert hub.resume_point(3, "now") == (3, False)
    assert hub.resume_point(-5, "now") == (0, False)
    assert hub.resume_point(None, "now") == (3, False)  # no id: only what comes next
    assert hub.resume_point(None, None) == (3, False)


def test_another_epoch_or_an_id_never_given_resets_to_the_start_of_the_ring() -> None:
    """A client of the previous process (its epoch, or an id beyond the last one this
    process gave) reads the ring from its start and is told to reload."""
    hub = LocalEventHub(epoch="now", ring_size=2)
    for i in range(3):
        hub.publish(ServerEvent("paused", f"a{i}"))
    assert hub.resume_point(1, "before") == (0, True)
    assert hub.resume_point(None, "before") == (0, True)
    assert hub.resume_point(500, None) == (0, True)
    assert hub.resume_point(500, "now") == (0, True)
    assert [n.event_id for n in hub.since(0)] == [2, 3]


def test_ring_only_events_reach_the_ring_but_not_the_stream_subscribers() -> None:
    """Job progress is for the web's ring; StreamEvents subscribers (whose wire has no kind
    for it) see only the other events."""
    async def scenario() -> None:
        hub = LocalEventHub()
        feed = hub.subscribe()
        first = asyncio.ensure_future(anext(feed))
        await asyncio.sleep(0)
        hub.publish(ServerEvent("job_progress", "worker", job_id="j"), ring_only=True)
        hub.publish(ServerEvent("job", "worker", job_id="j", job_state="COMPLETED"))
        assert (await asyncio.wait_for(first, 2)).kind == "job"
        assert [n.event.kind for n in hub.since(0)] == ["job_progress", "job"]
        await feed.aclose()

    asyncio.run(scenario())


def _poll_app(hub: EventHub) -> web.Application:
    app = web.Application(middlewares=[access.errors_middleware])
    app[live.HUB] = hub
    live.add_routes(app)
    return app


def test_the_long_poll_answers_a_stale_epoch_at_once_with_reset() -> None:
    """Over HTTP: the answer names the epoch; a stale epoch gets reset true at once (no
    wait for news) with the ring from its start; a current one waits as before; a bad
    epoch or id is a 400."""
    async def scenario() -> None:
        hub = LocalEventHub(epoch="now")
        hub.publish(ServerEvent("paused", "laptop", detail="True"))
        server = WebServer(_poll_app(hub), None)
        port = await server.start("127.0.0.1", 0)
        base = f"http://127.0.0.1:{port}/api/v1/events"
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}?after=7&epoch=before&timeout=60") as r:
                stale = await r.json()
            async with s.get(f"{base}?after=1&epoch=now&timeout=0") as r:
                current = await r.json()
            async with s.get(f"{base}?after=1&epoch={'x' * 65}") as r:
                assert r.status == 400
            async with s.get(f"{base}?after=one") as r:
                assert r.status == 400
        await server.stop()
        assert stale == {"events": [live.message(n) for n in hub.since(0)], "last_id": 1,
                         "gap": False, "epoch": "now", "reset": True}
        assert current == {"events": [], "last_id": 1, "gap": False, "epoch": "now",
                           "reset": False}

    asyncio.run(scenario())
