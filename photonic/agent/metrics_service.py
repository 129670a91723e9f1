"""The agent's `/metrics` (Prometheus) and `/healthz` endpoint on 127.0.0.1, as a service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from photonic.httpserve import HttpEndpoint, Response

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

HealthReport = Callable[[], Awaitable[dict[str, object]]]


class MetricsEndpointService:
    """Serves the registry and a health report on a local port until stopped."""

    name = "metrics"

    def __init__(self, registry: CollectorRegistry, health: HealthReport, port: int,
                 host: str = "127.0.0.1") -> None:
        self._registry = registry
        self._health = health
        self._host = host
        self._port = port
        self._http: HttpEndpoint | None = None

    async def start(self) -> None:
        """Binds the port before the agent goes on: a port in use fails the start."""
        if self._http is None:
            http = HttpEndpoint({"/metrics": self._metrics_page, "/healthz": self._healthz})
            await http.start(self._host, self._port)
            self._http = http

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()  # at once if start() ran; again after a restart
        try:
            await stop.wait()
        finally:
            http, self._http = self._http, None
            if http is not None:
                await http.stop()

    async def _metrics_page(self) -> Response:
        from prometheus_client import generate_latest

        return Response(200, generate_latest(self._registry),
                        "text/plain; version=0.0.4; charset=utf-8")

    async def _healthz(self) -> Response:
        report = await self._health()
        return Response.json(report, 503 if report.get("ok") is False else 200)
