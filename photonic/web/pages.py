"""The dashboard's pages: the app shell at /, the login page at /login and the static files
under /static/ (package data in photonic/web/static/, plain ES modules, no build step).

The static files are read once, at start, into a table keyed by their name: a request names
an entry of that table, never a path on disk, so nothing can list a folder or climb out of
it. The shell and the files hold no data (every byte of data comes from the API, which checks
the credential), so they are served without one; the shell sends a visitor without a session
to /login."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

from photonic.web import access

STATIC_PACKAGE = "photonic.web"
STATIC_FOLDER = "static"
MAX_FILES = 200
"""The static tree is small and ours; a bound keeps a stray folder from being loaded whole."""
SHELL = "index.html"
LOGIN = "login.html"
SHELL_RESOURCE = "dashboard-shell"
STATIC_RESOURCE = "dashboard-static"
LOGIN_RESOURCE = "dashboard-login"
PUBLIC_RESOURCES = frozenset({SHELL_RESOURCE, STATIC_RESOURCE, LOGIN_RESOURCE})
"""Routes served without a credential (told to access.py through access.PUBLIC_ROUTES)."""

POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
          "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
          "form-action 'self'; frame-ancestors 'none'")
"""Scripts and styles only from our own files (no inline code); no framing (clickjacking)."""
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
          ".html": "text/html", ".svg": "image/svg+xml", ".png": "image/png",
          ".ico": "image/x-icon", ".json": "application/json"}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str


def load_static(root: Traversable | None = None) -> dict[str, StaticFile]:
    """{name relative to static/ (posix): file} for every file shipped under static/."""
    root = root or resources.files(STATIC_PACKAGE).joinpath(STATIC_FOLDER)
    found: dict[str, StaticFile] = {}
    pending: list[tuple[str, Traversable]] = [("", root)]
    while pending:
        prefix, folder = pending.pop()
        for entry in folder.iterdir():
            name = prefix + entry.name
            if entry.name.startswith((".", "__")):
                continue
            if entry.is_dir():
                pending.append((name + "/", entry))
            elif entry.is_file():
                if len(found) >= MAX_FILES:
                    raise RuntimeError(f"more than {MAX_FILES} files under web/static")
                found[name] = StaticFile(entry.read_bytes(), _content_type(entry.name))
    return found


def _content_type(name: str) -> str:
    suffix = name[name.rfind("."):].lower() if "." in name else ""
    return _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


STATIC: web.AppKey[dict[str, StaticFile]] = web.AppKey("static_files", dict)


def _reply(found: StaticFile) -> web.Response:
    content_type = found.content_type
    response = web.Response(body=found.body, content_type=content_type)
    if content_type.startswith("text/") or content_type.endswith(("javascript", "json")):
        response.charset = "utf-8"
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if content_type == "text/html":
        response.headers["Content-Security-Policy"] = POLICY
        response.headers["Referrer-Policy"] = "same-origin"
    return response


async def _logged_in(request: web.Request) -> bool:
    book = request.app[access.BOOK]
    return await book.session(request.cookies.get(access.COOKIE, "")) is not None


async def shell(request: web.Request) -> web.StreamResponse:
    """The dashboard, or the login page for a browser without a session."""
    if not await _logged_in(request):
        raise web.HTTPFound("/login")
    return _reply(request.app[STATIC][SHELL])


async def login_page(request: web.Request) -> web.Response:
    """A page that posts the token as JSON to POST /login, then opens the dashboard; scripts
    keep posting the form field or JSON to POST /login directly."""
    return _reply(request.app[STATIC][LOGIN])


async def static_file(request: web.Request) -> web.Response:
    found = request.app[STATIC].get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound(text="no such file")
    return _reply(found)


def add_routes(app: web.Application) -> None:
    app[STATIC] = load_static()
    app[access.PUBLIC_ROUTES] = app.get(access.PUBLIC_ROUTES, frozenset()) | PUBLIC_RESOURCES
    app.router.add_get("/", shell, name=SHELL_RESOURCE)
    app.router.add_get("/login", login_page, name=LOGIN_RESOURCE)
    app.router.add_get("/static/{name:.+}", static_file, name=STATIC_RESOURCE)
