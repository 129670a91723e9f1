"""The bridge's HTTP face: aiohttp routes that check the caller (loopback, secret), parse the
body with the protocol module, call the bridge service and answer JSON. Errors of photonic's
tree map to HTTP statuses here, in one place."""

from __future__ import annotations

import ipaddress
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from photonic.errors import AuthError, InvalidInput, LimitExceeded, NotFound, PhotonicError
from photonic.lightroom import protocol as p
from photonic.lightroom.secret import secret_matches
from photonic.lightroom.service import BridgeService

log = logging.getLogger("photonic.lightroom")

SECRET_HEADER = "X-Photonic-Bridge-Secret"
_STATUS: tuple[tuple[type[PhotonicError], int], ...] = (
    (InvalidInput, 400), (AuthError, 401), (NotFound, 404), (p.JobConflict, 409),
    (LimitExceeded, 503))


def is_loopback_peer(remote: str | None) -> bool:
    """True for a loopback peer address (127.0.0.0/8, ::1, or 127.x mapped into IPv6)."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def make_app(service: BridgeService, secret: str) -> web.Application:
    """The bridge's aiohttp application; bodies over MAX_BODY_BYTES are refused (413)."""
    app = web.Application(middlewares=[_guard(secret)], client_max_size=p.MAX_BODY_BYTES)
    routes = _Routes(service)
    app.router.add_post("/bridge/handshake", routes.handshake)
    app.router.add_post("/bridge/send", routes.send)
    app.router.add_get("/bridge/poll", routes.poll)
    app.router.add_post("/bridge/disconnect", routes.disconnect)
    app.router.add_get("/bridge/status", routes.status)
    return app


def error_response(status: int, sentence: str) -> web.Response:
    return web.json_response(p.error(sentence), status=status)


def _guard(secret: str) -> Middleware:
    """Peer check (403), then secret check (401), then every error as JSON."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_loopback_peer(request.remote):
            return error_response(403, "the Lightroom bridge answers this computer only")
        given = request.headers.get(SECRET_HEADER)
        if not secret_matches(secret, given):
            missing = "is missing" if given is None else "is wrong"
            return error_response(401, f"the {SECRET_HEADER} header {missing}: reinstall the "
                                  "plugin with `photonic lightroom install-plugin`")
        try:
            return await handler(request)
        except web.HTTPException as e:  # 404, 405, 413 from aiohttp itself
            text = e.text if e.text and not e.text.startswith(str(e.status)) else e.reason
            return error_response(e.status, text or e.reason)
        except PhotonicError as e:
            status = next((s for kind, s in _STATUS if isinstance(e, kind)), 500)
            return error_response(status, str(e))
        except Exception:
            log.exception("lightroom bridge %s %s failed", request.method, request.path)
            return error_response(500, "the bridge failed on this call; see the agent's log")

    return guard


class _Routes:
    def __init__(self, service: BridgeService) -> None:
        self._service = service

    async def handshake(self, request: web.Request) -> web.Response:
        hello = p.parse_handshake(await _body(request))
        return web.json_response(self._service.handshake(hello))

    async def send(self, request: web.Request) -> web.Response:
        client_id, message = p.parse_send(await _body(request))
        await self._service.receive(client_id, message)
        return web.json_response({"type": "ok"})

    async def poll(self, request: web.Request) -> web.Response:
        client_id, timeout_s = p.parse_poll(request.query)

        def gone() -> bool:
            return request.transport is None or request.transport.is_closing()

        messages = await self._service.poll(client_id, timeout_s, gone)
        return web.json_response({"type": "messages", "messages": messages})

    async def disconnect(self, request: web.Request) -> web.Response:
        self._service.disconnect(p.parse_client_id(await _body(request)))
        return web.json_response({"type": "ok"})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self._service.status())


async def _body(request: web.Request) -> dict[str, object]:
    return p.parse_body(await request.read())
