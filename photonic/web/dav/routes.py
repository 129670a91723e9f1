"""The /dav/ routes: OPTIONS, PROPFIND (Depth 0 and 1), GET and HEAD (with one byte Range and
entity-tag conditions) over the library tree, and every write method refused: the library is
append-only, photos enter it only through an agent's sync. Handlers translate HTTP to
LibraryTree calls and back; what the tree holds and where bytes live is LibraryTree's."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import web

from photonic import errors
from photonic.server.library_tree import LibraryTree, TreeEntry
from photonic.web import access
from photonic.web.cert_access import Audit
from photonic.web.dav import props, ranges
from photonic.web.dav.gate import DavGate, Refusal
from photonic.web.dav.paths import PREFIX, tree_parts

READ_METHODS = ("OPTIONS", "PROPFIND", "GET", "HEAD")
ALLOW = ", ".join(READ_METHODS)
ROUTE_NAMES = frozenset({"webdav_root", "webdav"})
READ_ONLY = ("the library is append-only: photos enter it only through a photonic agent's "
             "sync, and nothing in it is changed, moved or deleted over WebDAV")
XML_CONTENT = "application/xml; charset=utf-8"

Handler = Callable[[web.Request, TreeEntry, str], Awaitable[web.StreamResponse]]
"""(request, the entry it names, the admitted caller)."""


class DavRoutes:
    def __init__(self, tree: LibraryTree, gate: DavGate) -> None:
        self._tree = tree
        self._gate = gate
        self._handlers: dict[str, Handler] = {
            "PROPFIND": self._propfind, "GET": self._get, "HEAD": self._get}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        admitted = await self._gate.admit(request)
        if not isinstance(admitted, str):
            return admitted
        if request.method not in READ_METHODS:
            return await self._gate.refuse(request, Refusal(
                405, f"{request.method} is refused: {READ_ONLY}", admitted),
                headers=_dav_headers())
        try:
            parts = tree_parts(request.raw_path)
        except errors.InvalidInput as exc:
            return await self._gate.refuse(request, Refusal(400, str(exc), admitted))
        if request.method == "OPTIONS":
            return web.Response(headers=_dav_headers())
        handler = self._handlers[request.method]
        try:
            entry = await self._tree.resolve(parts)
        except errors.NotFound as exc:
            return web.Response(status=404, text=f"{exc}\n")
        return await handler(request, entry, admitted)

    async def _propfind(self, request: web.Request, entry: TreeEntry,
                        actor: str) -> web.StreamResponse:
        depth = request.headers.get("Depth", "infinity").strip().lower()
        if depth not in ("0", "1"):
            if depth != "infinity":
                return web.Response(status=400, text="Depth is 0, 1 or infinity\n")
            return await self._gate.refuse(request, Refusal(
                403, "Depth: infinity is refused; list one level at a time with Depth: 1",
                actor), body=props.finite_depth_error())
        try:
            asked = props.parse_propfind(await request.read())
        except errors.InvalidInput as exc:
            return web.Response(status=400, text=f"{exc}\n")
        response = web.StreamResponse(status=207, headers={"Content-Type": XML_CONTENT})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write((props.HEAD + props.response_xml(entry, asked)).encode())
        if depth == "1" and entry.is_folder:
            async for page in self._tree.children(entry):
                await response.write("".join(
                    props.response_xml(child, asked) for child in page).encode())
        await response.write(props.TAIL.encode())
        await response.write_eof()
        return response

    async def _get(self, request: web.Request, entry: TreeEntry,
                   _actor: str) -> web.StreamResponse:
        f = entry.file
        if f is None:
            return web.Response(text="a WebDAV folder: list it with PROPFIND (a WebDAV "
                                     "client such as Finder, Explorer or rclone)\n")
        tag = props.etag(f)
        headers = {"ETag": tag, "Accept-Ranges": "bytes", "Cache-Control": "private",
                   "Last-Modified": props.live_values(entry)["getlastmodified"],
                   "X-Content-Type-Options": "nosniff"}
        if ranges.match_fails(request.headers.get("If-Match"), tag):
            return web.Response(status=412, headers=headers)
        if ranges.none_match(request.headers.get("If-None-Match"), tag):
            return web.Response(status=304, headers=headers)
        try:
            wanted = (ranges.byte_range(request.headers.get("Range"), f.size)
                      if ranges.range_applies(request.headers.get("If-Range"), tag) else None)
        except ranges.RangeNotSatisfiable:
            return web.Response(status=416, headers={
                **headers, "Content-Range": f"bytes */{f.size}"})
        response = web.StreamResponse(status=200 if wanted is None else 206, headers={
            **headers, "Content-Type": props.content_type(f.name)})
        if wanted is not None:
            response.headers["Content-Range"] = wanted.content_range(f.size)
        start, end = (0, f.size) if wanted is None else (wanted.start, wanted.end)
        response.content_length = end - start
        if request.method == "HEAD":
            await response.prepare(request)
            return response
        return await self._send(request, response, entry, start, end)

    async def _send(self, request: web.Request, response: web.StreamResponse,
                    entry: TreeEntry, start: int, end: int) -> web.StreamResponse:
        content = await self._tree.open(entry)
        try:
            await response.prepare(request)
            async with contextlib.aclosing(content.chunks(start, end)) as chunks:
                async for chunk in chunks:
                    await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            content.close()


def _dav_headers() -> dict[str, str]:
    # MS-Author-Via tells Windows' WebDAV redirector to speak DAV rather than FrontPage.
    return {"DAV": "1", "Allow": ALLOW, "MS-Author-Via": "DAV"}


def add_routes(app: web.Application, tree: LibraryTree, audit: Audit) -> None:
    """Serves the export under /dav/. Its routes check their own credentials (DavGate takes
    Basic, which the rest of the web layer does not), so access_middleware lets them by."""
    routes = DavRoutes(tree, DavGate(audit))
    app.router.add_route("*", PREFIX, routes.handle, name="webdav_root")
    app.router.add_route("*", PREFIX + "/{tail:.*}", routes.handle, name="webdav")
    app[access.PUBLIC_ROUTES] = app.get(access.PUBLIC_ROUTES, frozenset()) | ROUTE_NAMES
