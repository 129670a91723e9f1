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
MAX_CONNECTIONS = 32
"""Open connections at once: each costs a file descriptor, which the gRPC port needs too."""
REQUEST_DEADLINE_S = 5.0
"""For the request to arrive, and again for the answer to leave; a scraper needs milliseconds."""
ACCEPT_BACKLOG = 64
"""Connections the kernel queues before the server accepts them (a burst beyond it waits for a
SYN retry, a second). asyncio accepts up to this many at once before a handler runs, so the
endpoint holds at most MAX_CONNECTIONS + ACCEPT_BACKLOG descriptors, and that only briefly."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"

    @classmethod
    def json(cls, payload: object, status: int = 200) -> Response:
        return cls(status, json.dumps(payload, indent=2).encode(), "application/json")

    def head(self) -> bytes:
        return (f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'OK')}\r\n"
                f"Content-Type: {self.content_type}\r\n"
                f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n").encode()


Handler = Callable[[], Awaitable[Response]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable",
            400: "Bad Request"}


class HttpEndpoint:
    """Serves GET and HEAD routes; every connection is one request (Connection: close).

    At most max_connections are open at once. When one more arrives, the oldest connection
    that has still not sent its request is dropped to make room (a probe sends at once, so
    idle connections cannot lock it out); when every open one is being answered, the new one
    is closed at once. Each connection has deadline_s to send its request and deadline_s to
    take the answer."""

    def __init__(self, routes: dict[str, Handler], max_connections: int = MAX_CONNECTIONS,
                 deadline_s: float = REQUEST_DEADLINE_S) -> None:
        self._routes = routes
        self._max = max_connections
        self._deadline_s = deadline_s
        self._server: asyncio.Server | None = None
        # Open connections, oldest first; True while the request is still being read.
        self._open: dict[asyncio.StreamWriter, bool] = {}

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port,
                                                  limit=MAX_REQUEST_LINE, backlog=ACCEPT_BACKLOG)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._open):
                writer.transport.abort()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._admit(writer):
            writer.transport.abort()
            return
        try:
            response, with_body = await self._answer(reader)
            if writer not in self._open:
                return  # dropped for a newer connection while it was still reading
            self._open[writer] = False
            async with asyncio.timeout(self._deadline_s):
                writer.write(response.head() + (response.body if with_body else b""))
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self._open.pop(writer, None)
            writer.close()

    def _admit(self, writer: asyncio.StreamWriter) -> bool:
        if len(self._open) >= self._max:
            idle = next((w for w, reading in self._open.items() if reading), None)
            if idle is None:
                return False
            del self._open[idle]
            idle.transport.abort()
        self._open[writer] = True
        return True

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[Response, bool]:
        """The response, and whether its body goes out (not for HEAD)."""
        try:
            async with asyncio.timeout(self._deadline_s):
                method, target = await _read_request(reader)
        except (TimeoutError, ValueError, asyncio.LimitOverrunError, ConnectionError):
            return Response(400, b"bad request\n"), True
        if method not in ("GET", "HEAD"):
            return Response(405, b"only GET and HEAD\n"), True
        handler = self._routes.get(target)
        if handler is None:
            return Response(404, b"not found\n"), method == "GET"
        try:
            return await handler(), method == "GET"
        except Exception:
            log.exception("http handler failed", extra={"path": target})
            return Response(503, b"handler failed\n"), method == "GET"


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """(method, path) of the request line; the headers are read and ignored."""
    request_line = (await reader.readline()).decode("latin-1").split()
    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
        pass
    if len(request_line) < 2:
        raise ValueError("no request line")
    return request_line[0], request_line[1].split("?", 1)[0]
