"""The watchdog side of the folder watcher, kept in its own module so that only agents that
watch pay for importing watchdog (`--once` runs, the status view and the tests of pure
settle logic never do)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

log = logging.getLogger("photonic.agent.watcher")

_ACTED_ON = frozenset({"created", "modified", "moved", "closed"})


class WatchLike(Protocol):
    """A watched folder: config.WatchConfig fits."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> Path: ...


Deliver = Callable[[WatchLike, FileSystemEvent], None]


class _Handoff(FileSystemEventHandler):
    """Runs on watchdog's thread and does nothing but hand events to the asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, watch: WatchLike,
                 deliver: Deliver) -> None:
        self._loop = loop
        self._watch = watch
        self._deliver = deliver

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _ACTED_ON:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            self._loop.call_soon_threadsafe(self._deliver, self._watch, event)


def build_observer(watches: Sequence[WatchLike], loop: asyncio.AbstractEventLoop,
                   deliver: Deliver) -> BaseObserver:
    """An observer (not yet started) with a recursive watch on every existing root."""
    observer = Observer()
    for watch in watches:
        root = Path(watch.path)
        if not root.is_dir():
            log.warning("watch root missing, not watched", extra={"watch": watch.name})
            continue
        try:
            observer.schedule(_Handoff(loop, watch, deliver), str(root), recursive=True)
        except OSError as exc:  # e.g. inotify watch limit; the reconcile scan still runs
            log.warning("cannot watch root", extra={"watch": watch.name, "error": str(exc)})
    return observer
