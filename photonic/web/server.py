"""The server's web layer on the daemon's own event loop: /healthz and /metrics (public, as
before), the login exchange and the JSON API (admin only)."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from aiohttp import web

from photonic.server.agents_service import AgentsService
from photonic.server.catalog import Catalog
from photonic.server.events import EventHub
from photonic.server.jobs.results_archive import ResultsArchive
from photonic.server.jobs.service import JobsService
from photonic.server.jobs.web_intake import WebUploads
from photonic.server.library_browse import LibraryBrowser
from photonic.server.library_tree import LibraryTree
from photonic.server.media.service import MediaService
from photonic.web import (
    access,
    api,
    live,
    media_routes,
    overview_routes,
    pages,
    processing_routes,
    replication_routes,
)
from photonic.web.cert_access import Audit, CertificateGate
from photonic.web.credentials import TokenBook
from photonic.web.dav import routes as dav_routes
from photonic.web.page import PageSource, page_handler
from photonic.web.site import BoundedSite

if TYPE_CHECKING:
    from prometheus_client import Gauge

MAX_BODY_BYTES = 64 * 1024
KEEPALIVE_S = 5.0
MAX_LINE_BYTES = 8190
SHUTDOWN_S = 1.0


def build_app(*, health: PageSource, metrics: PageSource, agents: AgentsService,
              jobs: JobsService, catalog: Catalog, events: EventHub,
              overview: overview_routes.Overview | None = None,
              uploads: WebUploads,
              secure: bool, web_clients: Gauge | None = None,
              certs: CertificateGate | None = None,
              media: MediaService | None = None,
              replication: replication_routes.NodeStatuses | None = None,
              webdav_audit: Audit | None = None) -> web.Application:
    """web_clients: photonic_web_clients, counted by live.py. media: thumbnails, downloads
    and photo details (their routes exist only with it). webdav_audit: serve the read-only
    WebDAV export under /dav/ (with media, which reads its bytes), auditing refusals there."""
    app = web.Application(client_max_size=MAX_BODY_BYTES,
                          middlewares=[access.errors_middleware, access.access_middleware])
    app[access.BOOK] = TokenBook(catalog)
    app[access.SECURE_COOKIE] = secure
    app[api.AGENTS] = agents
    app[api.JOBS] = jobs
    app[api.LIBRARY] = LibraryBrowser(catalog)
    app[live.HUB] = events
    if web_clients is not None:
        app[live.CLIENTS] = web_clients
    if certs is not None:  # client certificates are credentials (over HTTPS)
        app[access.CERTS] = certs
    app.router.add_get("/healthz", page_handler(health))
    app.router.add_get("/metrics", page_handler(metrics))
    app.router.add_post("/login", access.login)
    app.router.add_post("/api/v1/logout", access.logout)
    app.router.add_get("/api/v1/session", access.session_info)
    api.add_routes(app)
    live.add_routes(app)
    if overview is not None:
        overview_routes.add_routes(app, overview)
    if media is not None:
        media_routes.add_routes(app, media)
    processing_routes.add_routes(app, uploads, ResultsArchive(jobs))
    if replication is not None:
        replication_routes.add_routes(app, replication)
    if webdav_audit is not None and media is not None:
        dav_routes.add_routes(app, LibraryTree(catalog, media.download), webdav_audit)
    pages.add_routes(app)
    return app


class WebServer:
    """start() binds host:port (0 = any free port) and answers the port; stop() ends it."""

    def __init__(self, app: web.Application, ssl_context: ssl.SSLContext | None) -> None:
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     keepalive_timeout=KEEPALIVE_S,
                                     shutdown_timeout=SHUTDOWN_S, max_line_size=MAX_LINE_BYTES,
                                     max_field_size=MAX_LINE_BYTES)
        self._ssl = ssl_context
        self._site: BoundedSite | None = None

    async def start(self, host: str, port: int) -> int:
        await self._runner.setup()
        self._site = BoundedSite(self._runner, host, port, ssl_context=self._ssl)
        await self._site.start()
        return self._site.port

    async def stop(self) -> None:
        # Open WebSockets and long-polls are cancelled after SHUTDOWN_S.
        await self._runner.cleanup()
