"""A minimal asyncio HTTP/1.1 endpoint for /healthz and /metrics, so neither daemon needs a
web framework just to be scraped and probed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("photonic.http")

MAX_REQUEST_LINE = 8192


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"

    @classmethod
    def json(cls, payload: object, status: int = 200) -> Response:
        return cls(status, json.dumps(payload, indent=2).encode(), "application/json")


Handler = Callable[[], Awaitable[Response]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable",
            400: "Bad Request"}


class HttpEndpoint:
    """Serves GET routes; every connection is one request (Connection: close)."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self._routes = routes
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port,
                                                  limit=MAX_REQUEST_LINE)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response = await asyncio.wait_for(self._respond(reader), timeout=10)
        except (TimeoutError, ValueError, asyncio.LimitOverrunError, ConnectionError):
            response = Response(400, b"bad request\n")
        head = (f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'OK')}\r\n"
                f"Content-Type: {response.content_type}\r\n"
                f"Content-Length: {len(response.body)}\r\nConnection: close\r\n\r\n")
        try:
            writer.write(head.encode() + response.body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> Response:
        request_line = (await reader.readline()).decode("latin-1").split()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        if len(request_line) < 2:
            return Response(400, b"bad request\n")
        method, target = request_line[0], request_line[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return Response(405, b"only GET\n")
        handler = self._routes.get(target)
        if handler is None:
            return Response(404, b"not found\n")
        try:
            return await handler()
        except Exception:
            log.exception("http handler failed", extra={"path": target})
            return Response(503, b"handler failed\n")
