"""The agent's `/metrics` (Prometheus) and `/healthz` endpoint on 127.0.0.1, as a service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from photonic.web.page import Page
    from photonic.web.probe_server import ProbeServer

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
        self._http: ProbeServer | None = None
        self.bound_port = 0
        """The port it listens on once started (the configured one, or the free one 0 got)."""

    async def start(self) -> None:
        """Binds the port before the agent goes on: a port in use fails the start."""
        # aiohttp is imported only by an agent that serves metrics, as prometheus_client is.
        from photonic.web.probe_server import ProbeServer

        if self._http is None:
            http = ProbeServer({"/metrics": self._metrics_page, "/healthz": self._healthz})
            self.bound_port = await http.start(self._host, self._port)
            self._http = http

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()  # at once if start() ran; again after a restart
        try:
            await stop.wait()
        finally:
            http, self._http = self._http, None
            if http is not None:
                await http.stop()

    async def _metrics_page(self) -> Page:
        from prometheus_client import generate_latest

        from photonic.web.page import Page

        return Page(200, generate_latest(self._registry),
                    "text/plain; version=0.0.4; charset=utf-8")

    async def _healthz(self) -> Page:
        from photonic.web.page import Page

        report = await self._health()
        return Page.json(report, 503 if report.get("ok") is False else 200)
