"""The watchdog side of the folder watcher: keeps every watch root watched while it vanishes,
appears and comes back. It lives in its own module so that only agents that watch pay for
importing watchdog (`--once` runs, the status view and the tests of pure settle logic never do).

A watchdog watch is bound to a directory inode, not to a path: once a root is deleted its
emitter stops itself (IN_DELETE_SELF), once it is renamed away the watch follows it elsewhere,
and once a share is mounted over it the watch hears nothing more. So besides the recursive
watch on each existing root, the nearest existing parent of every root is watched
(non-recursively) and its directory events make the roots be looked at again at once; a
periodic `refresh` (a stat per root) catches what no event reports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from photonic.logfmt import event as log_event

log = logging.getLogger("photonic.agent.watcher")

_ACTED_ON = frozenset({"created", "modified", "moved", "closed"})
_ENTRY_CHANGES = frozenset({"created", "deleted", "moved"})
_MAX_GUARD_MOVES = 64  # a path churning faster than this is left to the next refresh

Identity = tuple[int, int]
"""(st_dev, st_ino) of a root: a folder replaced at the same path has another."""


class WatchLike(Protocol):
    """A watched folder: config.WatchConfig fits."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> Path: ...


Deliver = Callable[[WatchLike, FileSystemEvent], None]


@dataclass(frozen=True)
class RootChange:
    """A root that went missing (present=False) or is watched again (present=True), after it
    appeared, came back or was replaced by another folder at its path."""

    watch_name: str
    present: bool


class _Handoff(FileSystemEventHandler):
    """Runs on watchdog's thread and does nothing but hand events to the asyncio loop.

    watchdog hands a handler every event queued for a watch of its path, including those of an
    earlier watch of the same path that was replaced: an event is a reason to look again, never
    a verdict on this handler's own watch."""

    EVENTS: ClassVar[list[type[FileSystemEvent]]] = [DirDeletedEvent]
    """What this handler acts on, so the kernel reports nothing else (watchdog turns the list
    into the inotify mask)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, watched_path: str,
                 wake: Callable[[], None]) -> None:
        self._loop = loop
        self._watched_path = watched_path
        self._wake = wake

    def _hand(self, callback: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            self._loop.call_soon_threadsafe(callback, *args)

    def _saw_self_deleted(self, event: FileSystemEvent) -> bool:
        """The watched folder itself was deleted (its emitter stops): look again at once."""
        if event.event_type == "deleted" and os.fsdecode(event.src_path) == self._watched_path:
            self._hand(self._wake)
            return True
        return False


class _RootHandoff(_Handoff):
    """The recursive watch of one root: file events go to deliver.

    Opens and closes without a write are not asked for: every file the agent itself reads
    (the settle check, hashing, uploading) would otherwise wake watchdog's thread twice, about
    30,000 events for a 5,000-photo folder, each handled in Python."""

    EVENTS: ClassVar[list[type[FileSystemEvent]]] = [
        FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileClosedEvent,
        DirCreatedEvent, DirMovedEvent, DirDeletedEvent]

    def __init__(self, loop: asyncio.AbstractEventLoop, watch: WatchLike, root_path: str,
                 deliver: Deliver, wake: Callable[[], None]) -> None:
        super().__init__(loop, root_path, wake)
        self._watch = watch
        self._deliver = deliver

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _ACTED_ON:
            self._hand(self._deliver, self._watch, event)
        else:
            self._saw_self_deleted(event)


class _GuardHandoff(_Handoff):
    """The non-recursive watch of a parent: wakes the loop when an entry on the way to a root
    (the root itself or one of its missing parents) is created, deleted or moved.

    A root's folder deleted or moved away also sets its departure flag: moved out and back
    between two looks, it is the same folder (same identity) at the same path, yet what was
    written meanwhile had no event under the root, so it must be treated as a return. The same
    holds for a folder deleted and made again that got the same inode number back."""

    EVENTS: ClassVar[list[type[FileSystemEvent]]] = [
        FileCreatedEvent, FileDeletedEvent, FileMovedEvent,
        DirCreatedEvent, DirDeletedEvent, DirMovedEvent]

    def __init__(self, loop: asyncio.AbstractEventLoop, watched_path: str,
                 on_the_way: frozenset[str], departures: Mapping[str, threading.Event],
                 wake: Callable[[], None]) -> None:
        super().__init__(loop, watched_path, wake)
        self._on_the_way = on_the_way
        self._departures = departures

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _ENTRY_CHANGES or self._saw_self_deleted(event):
            return
        src = os.fsdecode(event.src_path)
        departure = self._departures.get(src)
        if departure is not None and event.event_type != "created":
            departure.set()
        if not {src, os.fsdecode(event.dest_path)}.isdisjoint(self._on_the_way):
            self._hand(self._wake)


@dataclass
class _Root:
    """What is known of one watch root; changed only under RootWatches._lock."""

    watch: WatchLike
    path: str
    identity: Identity | None = None  # of the folder the current watch (or attempt) is on
    observed: ObservedWatch | None = None
    unwatchable: bool = False  # scheduling failed for this very folder (e.g. the watch limit)
    guard: str | None = None  # the parent watched for it
    present: bool = False  # as last reported


@dataclass
class _Guard:
    """A parent watched for one or more roots (two roots may share a parent)."""

    names: set[str] = field(default_factory=set)
    identity: Identity | None = None
    observed: ObservedWatch | None = None
    failed: bool = False  # this folder is not watchable (e.g. unreadable): not retried


def identity_of(path: str) -> Identity | None:
    """(st_dev, st_ino) of the folder at path (symlinks followed); None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def nearest_existing_parent(path: str) -> str | None:
    """The closest proper ancestor of path that is a folder; None for the file-system root."""
    for parent in Path(path).parents:
        if parent.is_dir():
            return str(parent)
    return None


class RootWatches:
    """The observer's watches, kept following their roots.

    start, refresh and stop block (they stat, and scheduling walks a root to watch its
    subfolders): call them in a worker thread, one at a time. Handlers call wake on the loop
    (via call_soon_threadsafe) whenever a refresh is due at once."""

    def __init__(self, watches: Sequence[WatchLike], loop: asyncio.AbstractEventLoop,
                 deliver: Deliver, wake: Callable[[], None]) -> None:
        self._observer: BaseObserver = Observer()
        self._loop = loop
        self._deliver = deliver
        self._wake = wake
        self._roots = [_Root(w, os.path.abspath(w.path)) for w in watches]
        self._guards: dict[str, _Guard] = {}
        self._on_the_way = frozenset(
            p for r in self._roots for p in (r.path, *map(str, Path(r.path).parents)))
        self._departures = {r.path: threading.Event() for r in self._roots}
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        """Starts the observer, then watches each root that exists (and a parent of each)."""
        with self._lock:
            # Started empty: a root that vanishes before its watch starts fails alone.
            self._observer.start()
            for root in self._roots:
                self._follow(root)
                if not root.present:
                    log_event(log, "watch_root_missing", logging.WARNING,
                              watch=root.watch.name, path=root.path, waiting_on=root.guard)

    def refresh(self) -> list[RootChange]:
        """Looks at every root again and (re)establishes the watches that need it."""
        changes: list[RootChange] = []
        with self._lock:
            if self._stopped:
                return changes
            for root in self._roots:
                was_present = root.present
                if self._follow(root):
                    log_event(log, "watch_root_watched", watch=root.watch.name, path=root.path,
                              after="missing" if not was_present else "replaced")
                    changes.append(RootChange(root.watch.name, present=True))
                elif was_present and not root.present:
                    log_event(log, "watch_root_missing", logging.WARNING,
                              watch=root.watch.name, path=root.path, waiting_on=root.guard)
                    changes.append(RootChange(root.watch.name, present=False))
        return changes

    def stop(self, timeout_s: float) -> None:
        """Stops the observer; later refreshes do nothing."""
        with self._lock:
            self._stopped = True
        self._observer.stop()
        self._observer.join(timeout_s)

    # -- one root -------------------------------------------------------------------------

    def _follow(self, root: _Root) -> bool:
        """Brings root's watches up to date; True if it is present and its recursive watch had
        to be made anew: the folder appeared, came back or was replaced.

        The parent is watched before the root is looked at, so a root created meanwhile
        produces an event (and another refresh) rather than going unnoticed."""
        self._guard_parent(root)
        departure = self._departures[root.path]
        departed = departure.is_set()
        # Cleared before the look: a departure after it is for the next refresh. One that
        # arrives after a periodic look already saw the folder gone and back costs one more,
        # harmless, return (and scan).
        departure.clear()
        current = identity_of(root.path)
        if current is None:
            self._drop_root_watch(root)
            root.identity, root.present = None, False
            return False
        if current == root.identity and not departed and (
                root.unwatchable or self._running(root.observed)):
            return False
        self._drop_root_watch(root)
        handoff = _RootHandoff(self._loop, root.watch, root.path, self._deliver, self._wake)
        observed = self._schedule(handoff, root.path, recursive=True, name=root.watch.name)
        if observed is None and identity_of(root.path) != current:
            root.identity, root.present = None, False  # gone again while being watched
            return False
        root.identity, root.present = current, True
        root.observed = observed
        root.unwatchable = observed is None  # not retried until the folder changes
        return True

    def _guard_parent(self, root: _Root) -> None:
        """Watches the nearest existing parent of root, looking again once it is watched: a
        folder made on the way to the root just before the watch began has no event."""
        parent = nearest_existing_parent(root.path)
        for _ in range(_MAX_GUARD_MOVES):
            self._place_guard(root, parent)
            parent, placed = nearest_existing_parent(root.path), parent
            if parent == placed:
                return

    def _drop_root_watch(self, root: _Root) -> None:
        self._unschedule(root.observed)
        root.observed = None

    def _place_guard(self, root: _Root, path: str | None) -> None:
        name = root.watch.name
        if root.guard is not None and root.guard != path:
            old = self._guards[root.guard]
            old.names.discard(name)
            if not old.names:
                self._unschedule(old.observed)
                del self._guards[root.guard]
        root.guard = path
        if path is None:
            return
        guard = self._guards.setdefault(path, _Guard())
        guard.names.add(name)
        current = identity_of(path)
        if current == guard.identity and (
                guard.failed or self._running(guard.observed)):
            return
        self._unschedule(guard.observed)  # a dead emitter would be reused by schedule
        handoff = _GuardHandoff(self._loop, path, self._on_the_way, self._departures,
                                self._wake)
        # Followed: a parent reached through a symlink is watched where it really is.
        guard.observed = self._schedule(handoff, path, recursive=False, name=name,
                                        follow_symlink=True)
        guard.identity = current
        guard.failed = guard.observed is None

    # -- watchdog -------------------------------------------------------------------------

    def _running(self, observed: ObservedWatch | None) -> bool:
        """True if observed has an emitter that did not stop (as it does once its folder is
        deleted: scheduling the same path again would reuse it, dead)."""
        return observed is not None and any(
            e.watch == observed and e.should_keep_running() for e in list(self._observer.emitters))

    def _schedule(self, handoff: _Handoff, path: str, *, recursive: bool, name: str,
                  follow_symlink: bool = False) -> ObservedWatch | None:
        try:
            watch: ObservedWatch = self._observer.schedule(
                handoff, path, recursive=recursive, follow_symlink=follow_symlink,
                event_filter=handoff.EVENTS)
        except FileNotFoundError:
            return None  # gone again: the next refresh sees it missing
        except OSError as exc:  # e.g. the inotify watch limit; the reconcile scan still runs
            log_event(log, "watch_unwatchable", logging.WARNING, watch=name, path=path,
                      error=str(exc))
            return None
        return watch

    def _unschedule(self, observed: ObservedWatch | None) -> None:
        if observed is not None:
            with contextlib.suppress(KeyError):  # already gone with a stopped observer
                self._observer.unschedule(observed)
