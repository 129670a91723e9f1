"""Where the web layer listens: a TCP site that holds a bounded number of connections (the
oldest is dropped for a new one, so idle connections cannot lock a probe out or spend the
descriptors gRPC needs), and the TLS decision (HTTPS whenever the bind is beyond loopback)."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from photonic import errors

MAX_CONNECTIONS = 32
"""Open connections at once: each costs a file descriptor, which the gRPC port needs too."""
ACCEPT_BACKLOG = 64


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web_ssl_context(bind: str, cert: Path | None, key: Path | None,
                    ca: Path | None = None) -> ssl.SSLContext | None:
    """None (plain HTTP) on loopback; an HTTPS context with the server's certificate anywhere
    else, and a refusal when there is none: the admin token must not cross a network in clear.

    With ca, the context asks for an optional client certificate signed by it (an admin's
    certificate is a credential, see web/cert_access.py); a client without one still
    connects, and one with a certificate the CA did not sign fails the handshake."""
    if is_loopback(bind):
        return None
    if cert is None or key is None or not cert.is_file() or not key.is_file():
        raise errors.ConfigError([errors.ConfigProblem(
            "server.yaml", "server.web_ui_bind",
            "a loopback address, or security.cert_path and security.key_path: beyond "
            "loopback the dashboard is served only over HTTPS", bind)])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if ca is not None:
        context.load_verify_locations(cafile=ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class _Tracked(asyncio.Protocol):
    """Passes everything to aiohttp's protocol, and tells the cap when it opens and closes."""

    def __init__(self, inner: asyncio.Protocol, cap: ConnectionCap) -> None:
        self._inner = inner
        self._cap = cap
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._cap.admit(transport)
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._cap.forget(self._transport)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class ConnectionCap:
    """At most limit transports open; admitting one more aborts the oldest."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], limit: int) -> None:
        self._factory = factory
        self._limit = limit
        self._open: dict[asyncio.BaseTransport, None] = {}

    def __call__(self) -> asyncio.Protocol:
        return _Tracked(self._factory(), self)

    def admit(self, transport: asyncio.BaseTransport) -> None:
        while len(self._open) >= self._limit:
            oldest = next(iter(self._open))
            del self._open[oldest]
            if isinstance(oldest, asyncio.WriteTransport):
                oldest.abort()
            else:
                oldest.close()
        self._open[transport] = None

    def forget(self, transport: asyncio.BaseTransport) -> None:
        self._open.pop(transport, None)

    def abort_all(self) -> None:
        for transport in list(self._open):
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()
        self._open.clear()


class BoundedSite(web.BaseSite):
    """A TCP site whose connections go through a ConnectionCap."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *,
                 ssl_context: ssl.SSLContext | None = None,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=ACCEPT_BACKLOG)
        self._host = host
        self._port = port
        self._max = max_connections
        self.cap: ConnectionCap | None = None
        self.port = 0

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        factory = self._runner.server
        assert factory is not None
        self.cap = ConnectionCap(factory, self._max)
        server = await asyncio.get_running_loop().create_server(
            self.cap, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=True)
        self._server = server
        self.port = int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.cap is not None:
            self.cap.abort_all()
        await super().stop()
