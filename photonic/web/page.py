"""A page a daemon produces without knowing the web framework (its health report, its
Prometheus text), and the aiohttp handler that serves one; shared by the server's web layer
and the agent's probe endpoint."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger("photonic.http")


@dataclass(frozen=True)
class Page:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"

    @classmethod
    def json(cls, payload: object, status: int = 200) -> Page:
        return cls(status, json.dumps(payload, indent=2).encode(), "application/json")


PageSource = Callable[[], Awaitable[Page]]
Handler = Callable[[web.Request], Awaitable[web.Response]]


def page_handler(produce: PageSource) -> Handler:
    """An aiohttp handler for produce. A producer that fails answers 503, not 500: a probe
    reads a health page whose checks cannot even run as unhealthy, and the failure is logged
    here (no class name or traceback reaches the client)."""

    async def handler(request: web.Request) -> web.Response:
        try:
            page = await produce()
        except Exception:
            log.exception("http handler failed", extra={"path": request.path})
            return web.Response(status=503, body=b"handler failed\n",
                                content_type="text/plain")
        return web.Response(status=page.status, body=page.body,
                            headers={"Content-Type": page.content_type})
    return handler
