"""A real store, catalog, library and media layer behind the /dav/ routes on a real loopback
HTTP server, for the WebDAV export's HTTP-level tests (no daemon: the e2e tests run those)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import aiohttp
import yarl
from aiohttp import web

from photonic.models import ConflictPolicy, ContentHash, ManifestEntry
from photonic.server.catalog import SqliteCatalog
from photonic.server.jobs.sqlite_queue import SqliteJobQueue
from photonic.server.library import Library
from photonic.server.library_tree import LibraryTree
from photonic.server.media.service import MediaService
from photonic.server.store import ContentStore
from photonic.web import access
from photonic.web.credentials import TokenBook, create_token
from photonic.web.dav import routes
from photonic.web.server import WebServer


@dataclass
class DavWorld:
    root: Path
    store: ContentStore
    catalog: SqliteCatalog
    library: Library
    queue: SqliteJobQueue
    token: str

    def put(self, rel: str, content: bytes, agent: str = "laptop", watch: str = "photos",
            mtime_ns: int = 0) -> str:
        """Stores content and records it as a version of <agent>/<watch>/<rel>."""
        sha = hashlib.sha256(content).hexdigest()
        if not self.store.has_object(sha):
            upload = self.store.open_partial(ContentHash(sha), len(content), resume=False)
            upload.append(content)
            self.store.commit(upload)
        entry = ManifestEntry(ContentHash(sha), len(content), watch, rel, mtime_ns=mtime_ns)
        self.library.record_many(agent, [(entry, PurePosixPath(rel))], ConflictPolicy.AUTO)
        return sha

    def audit(self) -> list[tuple[str, str, str, str]]:
        """(actor, action, target, result), oldest first."""
        return [(a, b, c, r) for _, a, b, c, r, _ in reversed(self.catalog.audit_rows())]


def make_world(tmp_path: Path) -> DavWorld:
    storage = tmp_path / "storage"
    store = ContentStore(storage)
    catalog = SqliteCatalog(storage / "catalog.db")
    queue = SqliteJobQueue(storage / "jobs.db")
    return DavWorld(tmp_path, store, catalog, Library(store, catalog, None), queue,
                    create_token(catalog, "ops"))


class Client:
    """Requests to the running export, answered as (status, headers, body)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self._s = session
        self.base = base
        self.basic = basic(token)

    async def call(self, method: str, path: str, *, auth: str | None = None,
                   **kwargs: Any) -> tuple[int, Mapping[str, str], bytes]:
        """auth: the Authorization header (default: Basic with the admin token; "" none)."""
        headers = dict(kwargs.pop("headers", {}))
        auth = self.basic if auth is None else auth
        if auth:
            headers["Authorization"] = auth
        async with self._s.request(method, self.base + path, headers=headers,
                                   **kwargs) as r:
            return r.status, r.headers.copy(), await r.read()

    async def raw_get(self, raw_path: str) -> tuple[int, bytes]:
        """A GET of raw_path exactly as written (its percent-escapes and dots kept)."""
        url = yarl.URL(self.base + raw_path, encoded=True)
        async with self._s.get(url, headers={"Authorization": self.basic}) as r:
            return r.status, await r.read()


def basic(password: str, user: str = "finder") -> str:
    return aiohttp.encode_basic_auth(user, password)


@asynccontextmanager
async def serving(world: DavWorld, page_size: int = 1000) -> AsyncIterator[Client]:
    media = MediaService(world.store, world.catalog, world.queue, world.root / "storage")

    async def audit(actor: str, action: str, target: str, result: str,
                    detail: str = "") -> None:
        await asyncio.to_thread(world.catalog.audit, actor, action, target, result, detail)

    app = web.Application(middlewares=[access.errors_middleware, access.access_middleware])
    app[access.BOOK] = TokenBook(world.catalog)
    routes.add_routes(app, LibraryTree(world.catalog, media.download, page_size), audit)
    server = WebServer(app, None)
    port = await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            yield Client(session, f"http://127.0.0.1:{port}", world.token)
    finally:
        await server.stop()


def run(world: DavWorld, scenario: Callable[[Client], Awaitable[None]],
        page_size: int = 1000) -> None:
    async def go() -> None:
        async with serving(world, page_size) as client:
            await scenario(client)
    asyncio.run(go())
