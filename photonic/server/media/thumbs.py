"""Thumbnails of stored content, made once and kept on disk: `<cache>/ab/<sha256>-<size>.jpg`,
written whole (temporary file, then rename) so a reader never sees half of one. A cached
thumbnail costs one file read; making one runs in a thread behind a small semaphore, so
thumbnails of a whole library page never block the event loop or starve sync's threads, and
concurrent requests for the same thumbnail share one rendering."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from photonic import errors
from photonic.logfmt import event
from photonic.media.thumbnail import render_thumbnail

log = logging.getLogger("photonic.server.thumbs")

THUMB_SIZES = (256, 1024)
"""Long edges, in pixels: a grid tile and a viewer."""
RENDER_CONCURRENCY = 2
MAX_REMEMBERED_FAILURES = 4096
"""Content found undecodable is refused again at once, without decoding it again."""


class ThumbnailCache:
    def __init__(self, root: Path, open_object: Callable[[str], BinaryIO], *,
                 concurrency: int = RENDER_CONCURRENCY) -> None:
        """open_object: a (checked) content's bytes, opened from the store; NotFound when
        the store no longer holds them."""
        self._root = root
        self._open_object = open_object
        self._gate = asyncio.Semaphore(concurrency)
        self._running: dict[tuple[str, int], asyncio.Task[bytes]] = {}
        self._failed: OrderedDict[str, str] = OrderedDict()
        self.rendered = 0
        """Thumbnails made (not read from the cache) since start: for tests and metrics."""

    def path_of(self, sha256: str, size: int) -> Path:
        return self._root / sha256[:2] / f"{sha256}-{size}.jpg"

    async def get(self, sha256: str, size: int) -> bytes:
        """The JPEG thumbnail of checked content; raises UnsupportedMedia when it is not an
        image, NotFound when the store no longer holds its bytes."""
        if size not in THUMB_SIZES:
            raise errors.InvalidInput(f"size is one of {', '.join(map(str, THUMB_SIZES))}")
        if sha256 in self._failed:
            raise errors.UnsupportedMedia(self._failed[sha256])
        path = self.path_of(sha256, size)
        cached = await asyncio.to_thread(_read_if_there, path)
        if cached is not None:
            return cached
        key = (sha256, size)
        task = self._running.get(key)
        if task is None:
            task = asyncio.create_task(self._make(sha256, size, path))
            self._running[key] = task
            task.add_done_callback(lambda t: self._settled(key, t))
        # Shielded: one client going away does not cancel the rendering others wait for.
        return await asyncio.shield(task)

    def _settled(self, key: tuple[str, int], task: asyncio.Task[bytes]) -> None:
        self._running.pop(key, None)
        if task.cancelled():
            return
        exc = task.exception()  # retrieved here, so a rendering nobody awaits is not logged
        if isinstance(exc, errors.UnsupportedMedia):
            self._failed[key[0]] = str(exc)
            while len(self._failed) > MAX_REMEMBERED_FAILURES:
                self._failed.popitem(last=False)

    async def _make(self, sha256: str, size: int, path: Path) -> bytes:
        async with self._gate:
            data = await asyncio.to_thread(self._render_to, sha256, size, path)
        self.rendered += 1
        return data

    def _render_to(self, sha256: str, size: int, path: Path) -> bytes:
        try:
            source = self._open_object(sha256)
        except FileNotFoundError:
            raise errors.NotFound(f"content {sha256[:12]} is not in the store (quarantined "
                                  "until an agent sends it again)") from None
        with source:
            data = render_thumbnail(source, size)
        try:
            _write_whole(path, data)
        except OSError as exc:  # a full disk costs the cache, not the thumbnail
            event(log, "thumbnail_not_cached", logging.WARNING, sha256=sha256[:12],
                  error=exc.strerror or "")
        return data


def _read_if_there(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write_whole(path: Path, data: bytes) -> None:
    """Temporary file beside it, fsynced (a crash must not leave an empty thumbnail under
    the final name), then renamed over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
