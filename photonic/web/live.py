"""Live events for the web: a long-poll (`GET /api/v1/events?after=ID&epoch=E&timeout=S`)
and a WebSocket (`/api/v1/ws?after=ID&epoch=E`) that both read the hub's numbered ring, so
they carry the same messages in the same order and resume after the last id a client saw.
Ids restart with the process: the hub's epoch names the numbering, a long-poll answer carries
it and a WebSocket opens with a hello message that does; a client that names another epoch is
answered from the start of the ring with `reset: true` and should read everything again.
Nothing is queued per client: a WebSocket that cannot take a message within SEND_TIMEOUT_S is
closed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from photonic import errors
from photonic.server.events import EventHub, NumberedEvent

if TYPE_CHECKING:
    from prometheus_client import Gauge

HUB: web.AppKey[EventHub] = web.AppKey("event_hub")
MAX_POLL_S = 60.0
WS_WAIT_S = 25.0
"""How long a WebSocket waits for news before it sends a keep-alive ping."""
SEND_TIMEOUT_S = 5.0
MAX_BATCH = 200
MAX_EPOCH_CHARS = 64
LIVE_SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("live_sockets", set)
CLIENTS: web.AppKey[Gauge] = web.AppKey("live_clients")
"""photonic_web_clients{transport}: the live connections open now, a WebSocket from its
upgrade to its close, a long-poll while it waits."""
WEBSOCKET, LONGPOLL = "websocket", "longpoll"


def message(n: NumberedEvent) -> dict[str, Any]:
    return {"id": n.event_id, **dataclasses.asdict(n.event)}


def _resume(request: web.Request, hub: EventHub) -> tuple[int, bool]:
    """The id to resume after and whether the client must read everything again:
    ?after=ID (none: only what comes next) within ?epoch=E (see EventHub.resume_point)."""
    text = request.query.get("after", "")
    epoch = request.query.get("epoch") or None
    if epoch is not None and len(epoch) > MAX_EPOCH_CHARS:
        raise errors.InvalidInput("epoch is the text an earlier answer gave")
    try:
        after = int(text) if text else None
    except ValueError:
        raise errors.InvalidInput("after is an event id (a number)") from None
    return hub.resume_point(after, epoch)


async def poll_events(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    after, reset = _resume(request, hub)
    try:
        timeout_s = min(MAX_POLL_S, max(0.0, float(request.query.get("timeout", "25"))))
    except ValueError:
        raise errors.InvalidInput("timeout is in seconds") from None
    with _counted(request, LONGPOLL):
        # A reset answers at once: the client reloads now, not after the next event.
        found = await hub.wait_since(after, 0 if reset else timeout_s, MAX_BATCH)
    last = found[-1].event_id if found else after
    gap = bool(found) and found[0].event_id > after + 1
    return web.json_response({"events": [message(n) for n in found], "last_id": last,
                              "gap": gap, "epoch": hub.epoch, "reset": reset})


async def websocket(request: web.Request) -> web.WebSocketResponse:
    hub = request.app[HUB]
    after, reset = _resume(request, hub)
    ws = web.WebSocketResponse(heartbeat=WS_WAIT_S, max_msg_size=4096)
    await ws.prepare(request)
    with _counted(request, WEBSOCKET):
        await _stream(ws, request, hub, after, hello(hub, after, reset))
    return ws


def hello(hub: EventHub, after: int, reset: bool) -> dict[str, Any]:
    """A WebSocket's first message: the epoch its ids belong to, the id it resumes after,
    and whether the client must read everything again. No "id": it is not an event."""
    return {"kind": "hello", "epoch": hub.epoch, "last_id": after, "reset": reset}


async def _stream(ws: web.WebSocketResponse, request: web.Request, hub: EventHub,
                  after: int, first: dict[str, Any]) -> None:
    sockets = request.app[LIVE_SOCKETS]
    sockets.add(ws)
    reader = asyncio.create_task(_drain_incoming(ws))
    try:
        await asyncio.wait_for(ws.send_json(first), SEND_TIMEOUT_S)
        while not ws.closed and not reader.done():
            # A client that closes while nothing happens ends the handler now, not at the
            # next event or keep-alive (it holds a connection slot and a count till then).
            news = asyncio.ensure_future(hub.wait_since(after, WS_WAIT_S, MAX_BATCH))
            await asyncio.wait({news, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not news.done():
                news.cancel()
                break
            for n in news.result():
                await asyncio.wait_for(ws.send_json(message(n)), SEND_TIMEOUT_S)
                after = n.event_id
    except (TimeoutError, ConnectionError):
        pass  # too slow or gone: dropped, never buffered
    finally:
        sockets.discard(ws)
        reader.cancel()
        await _close(ws, request)


@contextlib.contextmanager
def _counted(request: web.Request, transport: str) -> Iterator[None]:
    """Counts one open connection of transport for as long as the block runs (when the
    app has a gauge: tests may build one without)."""
    gauge = request.app.get(CLIENTS)
    if gauge is None:
        yield
        return
    gauge.labels(transport).inc()
    try:
        yield
    finally:
        gauge.labels(transport).dec()


async def _drain_incoming(ws: web.WebSocketResponse) -> None:
    """Reads (and ignores) what the client sends, so pings are answered and a close is seen."""
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break


async def _close(ws: web.WebSocketResponse, request: web.Request) -> None:
    try:
        await asyncio.wait_for(ws.close(), 1.0)
    except (TimeoutError, ConnectionError):
        if request.transport is not None:
            request.transport.abort()


def add_routes(app: web.Application) -> None:
    app[LIVE_SOCKETS] = set()
    app.router.add_get("/api/v1/events", poll_events)
    app.router.add_get("/api/v1/ws", websocket)
