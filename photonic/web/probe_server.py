"""A daemon's probe endpoint (the agent's /healthz and /metrics): a few GET pages on aiohttp,
through the same capped site as the server's web layer, on the daemon's own event loop."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from photonic.web.page import PageSource, page_handler
from photonic.web.site import MAX_CONNECTIONS, BoundedSite

KEEPALIVE_S = 5.0
"""An idle kept-alive connection is closed after this; a scraper needs milliseconds."""
MAX_LINE_BYTES = 8190
MAX_BODY_BYTES = 1024
"""The pages take no body; a request that sends one has no use for more."""
SHUTDOWN_S = 1.0


class ProbeServer:
    """Serves pages (path -> producer) for GET and HEAD; any other method is 405, any other
    path 404. At most max_connections are open at once: one more drops the oldest, so idle
    connections cannot lock a probe out or spend the descriptors the daemon needs."""

    def __init__(self, pages: Mapping[str, PageSource],
                 max_connections: int = MAX_CONNECTIONS) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        for path, produce in pages.items():
            app.router.add_get(path, page_handler(produce))  # HEAD too
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     keepalive_timeout=KEEPALIVE_S,
                                     shutdown_timeout=SHUTDOWN_S, max_line_size=MAX_LINE_BYTES,
                                     max_field_size=MAX_LINE_BYTES)
        self._max = max_connections
        self._site: BoundedSite | None = None

    async def start(self, host: str, port: int) -> int:
        """Binds host:port (0 = any free port) and answers the port; a port in use raises."""
        await self._runner.setup()
        site = BoundedSite(self._runner, host, port, max_connections=self._max)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self._site = site
        return site.port

    async def stop(self) -> None:
        await self._runner.cleanup()
