"""The media routes (admin only, like the rest of the API): thumbnails, downloads, and the
details of a photo or of one content. Each handler reads the request, calls MediaService and
shapes the answer; which content may be served and where its bytes are is MediaService's."""

from __future__ import annotations

import contextlib
import dataclasses
import mimetypes
import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from photonic import errors
from photonic.jobs_client import job_to_dict
from photonic.server.media.service import MediaService
from photonic.server.media.thumbs import THUMB_SIZES

MEDIA: web.AppKey[MediaService] = web.AppKey("media", MediaService)
THUMB_CACHE_CONTROL = "private, max-age=31536000, immutable"
"""A thumbnail's URL names its content: it never changes, so the browser keeps it."""
DOWNLOAD_CACHE_CONTROL = "private, no-transform"
_UNSAFE_IN_QUOTES = re.compile(r'[^\x20-\x7e]|["\\%;]')


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback name (anything unsafe inside quotes replaced) and
    the exact name in RFC 5987 `filename*` form."""
    fallback = _UNSAFE_IN_QUOTES.sub("_", name)[:200] or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _thumb_size(query: Any) -> int:
    text = query.get("size", str(THUMB_SIZES[0]))
    if text not in {str(s) for s in THUMB_SIZES}:
        raise errors.InvalidInput(f"size is one of {', '.join(map(str, THUMB_SIZES))}")
    return int(text)


def _etag(sha256: str) -> str:
    return f'"{sha256}"'


async def thumbnail(request: web.Request) -> web.Response:
    media, sha256 = request.app[MEDIA], request.match_info["sha256"]
    size = _thumb_size(request.query)
    headers = {"Cache-Control": THUMB_CACHE_CONTROL, "ETag": _etag(sha256),
               "X-Content-Type-Options": "nosniff"}
    if _etag(sha256) in request.headers.get("If-None-Match", ""):
        await media.servable(sha256)  # the rule holds for a revalidation too
        return web.Response(status=304, headers=headers)
    body = await media.thumbnail(sha256, size)
    return web.Response(body=body, content_type="image/jpeg", headers=headers)


async def download(request: web.Request) -> web.StreamResponse:
    sha256 = request.match_info["sha256"]
    content = await request.app[MEDIA].download(sha256)
    try:
        response = web.StreamResponse(headers={
            "Content-Type": mimetypes.guess_type(content.name)[0] or "application/octet-stream",
            "Content-Disposition": content_disposition(content.name),
            "Cache-Control": DOWNLOAD_CACHE_CONTROL, "ETag": _etag(sha256),
            "X-Content-Type-Options": "nosniff"})
        response.content_length = content.size
        await response.prepare(request)
        async with contextlib.aclosing(content.chunks()) as chunks:
            async for chunk in chunks:
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        content.close()


def _as_json(view: Any) -> dict[str, Any]:
    out: dict[str, Any] = dataclasses.asdict(view)
    if "jobs" in out:
        out["jobs"] = [job_to_dict(j) for j in view.jobs]
    return out


async def photo(request: web.Request) -> web.Response:
    view = await request.app[MEDIA].photo(request.match_info["location_id"])
    return web.json_response(_as_json(view))


async def content(request: web.Request) -> web.Response:
    view = await request.app[MEDIA].content(request.match_info["sha256"])
    return web.json_response(_as_json(view))


def add_routes(app: web.Application, media: MediaService) -> None:
    app[MEDIA] = media
    r = app.router
    r.add_get("/thumb/{sha256}", thumbnail)
    r.add_get("/download/{sha256}", download)
    r.add_get("/api/v1/photos/{location_id}", photo)
    r.add_get("/api/v1/content/{sha256}", content)
