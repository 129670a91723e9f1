"""Watches folders with watchdog and reports files once they have settled and are complete."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photonic.media.images import is_structurally_complete

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent

    from photonic.agent.fsevents import RootChange, RootWatches, WatchLike

log = logging.getLogger(__name__)

# A directory moved into a watch is walked this far; the reconcile scan covers anything beyond.
_MAX_WALK_FILES = 10_000
_OBSERVER_JOIN_TIMEOUT_S = 5.0
# How often every root is stat'ed for a change no event reports (a share mounted over it).
ROOT_CHECK_INTERVAL_S = 1.0


@dataclass(frozen=True)
class SettledFile:
    """A file that stopped changing; incomplete means it timed out without its end marker."""

    watch_name: str
    path: Path
    incomplete: bool


@dataclass(frozen=True)
class _Tracked:
    stable_since_s: float
    size: int = -1  # -1: touched but not yet looked at
    mtime_ns: int = -1
    known_incomplete: bool = False
    closed: bool = False  # the writer closed the file: a much shorter quiet period suffices

    @property
    def observed(self) -> bool:
        return self.size >= 0


_Key = tuple[str, Path]


def _stat_regular(path: Path) -> os.stat_result | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


class SettleTracker:
    """Decides when a changing file has settled.

    Settled means size and mtime unchanged for settle_delay_s and structurally complete
    (photonic.media.images.is_structurally_complete) — or unchanged but incomplete for
    incomplete_timeout_s, in which case it is emitted with incomplete=True so a truly truncated
    photo is still kept. The settle timer starts when due() first sees a touched path or sees
    it changed; a path is stat'ed only when touched or when its timer runs out. touch() may run
    on the event loop while due() runs in a worker thread: the file I/O in due() happens outside
    the lock, and a path touched meanwhile is left alone.
    """

    def __init__(
        self,
        *,
        settle_delay_s: float,
        incomplete_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        is_complete: Callable[[Path], bool] = is_structurally_complete,
        closed_settle_delay_s: float | None = None,
    ) -> None:
        self._settle_delay_s = settle_delay_s
        self._closed_delay_s = min(settle_delay_s, closed_settle_delay_s
                                   if closed_settle_delay_s is not None else settle_delay_s)
        self._incomplete_timeout_s = max(incomplete_timeout_s, settle_delay_s)
        self._clock = clock
        self._is_complete = is_complete
        self._lock = threading.Lock()
        self._tracked: dict[_Key, _Tracked] = {}

    def touch(self, watch_name: str, path: Path, *, closed: bool = False) -> None:
        """A candidate changed or appeared: (re)start its settle timer. Does no I/O.

        closed: the writer closed it (inotify CLOSE_WRITE), a far stronger sign than silence
        that it is done; it still has to stay unchanged for closed_settle_delay_s and be
        structurally complete, so a writer that reopens the file only delays it."""
        with self._lock:
            self._tracked[(watch_name, path)] = _Tracked(self._clock(), closed=closed)

    def due(self) -> list[SettledFile]:
        """Checks the tracked paths whose timer ran out and returns (and forgets) the settled."""
        now = self._clock()
        with self._lock:
            snapshot = [(k, e) for k, e in self._tracked.items() if self._deadline_s(e) <= now]
        results = [(key, old, self._check(key, old)) for key, old in snapshot]
        settled: list[SettledFile] = []
        with self._lock:
            for key, old, new in results:
                if self._tracked.get(key) is not old:
                    continue  # touched while we looked: its fresh timer wins
                if isinstance(new, _Tracked):
                    self._tracked[key] = new
                    continue
                del self._tracked[key]
                if new is not None:
                    settled.append(new)
        return settled

    def _check(self, key: _Key, old: _Tracked) -> _Tracked | SettledFile | None:
        """New state, a settled verdict, or None when the path is gone."""
        watch_name, path = key
        st = _stat_regular(path)
        now = self._clock()
        if st is None:
            return None
        if (st.st_size, st.st_mtime_ns) != (old.size, old.mtime_ns):
            return _Tracked(now, st.st_size, st.st_mtime_ns, closed=old.closed)
        if now < old.stable_since_s + self._quiet_s(old):
            return old
        if not old.known_incomplete:
            try:
                complete = self._is_complete(path)
            except OSError:
                return None
            if complete:
                return SettledFile(watch_name, path, incomplete=False)
            old = replace(old, known_incomplete=True)
        if now >= old.stable_since_s + self._incomplete_timeout_s:
            return SettledFile(watch_name, path, incomplete=True)
        return old

    def next_check_in_s(self) -> float | None:
        """Seconds until the earliest tracked path could settle; None when nothing is tracked."""
        with self._lock:
            entries = list(self._tracked.values())
        if not entries:
            return None
        now = self._clock()
        return max(0.0, min(self._deadline_s(e) for e in entries) - now)

    def _deadline_s(self, entry: _Tracked) -> float:
        """When a path is next worth a stat: at once if never seen, else when its timer ends."""
        if not entry.observed:
            return entry.stable_since_s
        delay_s = self._incomplete_timeout_s if entry.known_incomplete else self._quiet_s(entry)
        return entry.stable_since_s + delay_s

    def _quiet_s(self, entry: _Tracked) -> float:
        return self._closed_delay_s if entry.closed else self._settle_delay_s

    def __len__(self) -> int:
        with self._lock:
            return len(self._tracked)


def _walk_files(root: Path, limit: int) -> list[Path]:
    found: list[Path] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            found.append(Path(dirpath, name))
            if len(found) >= limit:
                return found
    return found


class FolderWatcher:
    """Watches folders with watchdog and calls on_settled with the files that have settled.

    Every file found settled at one check is handed over in one call: a card's worth of
    photos, or a folder moved in, is hashed and recorded together (one index transaction per
    few hundred files), not one file, one transaction and one upload round at a time.

    Deletions are ignored (they never propagate). Watchers drop events, so the agent's
    periodic reconcile scan remains the source of truth; this only makes new photos prompt.
    Watches follow their folders: a root that vanishes, appears, comes back or is replaced
    is watched again at once, and on_root_changed is told, so the caller can reconcile it
    (files copied into a returning folder before its new watch existed have no event).
    """

    def __init__(
        self,
        watches: Sequence[WatchLike],
        on_settled: Callable[[list[SettledFile]], Awaitable[None]],
        *,
        settle_delay_s: float,
        incomplete_timeout_s: float,
        ignore: Callable[[str, str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        is_complete: Callable[[Path], bool] = is_structurally_complete,
        max_wait_s: float = 1.0,
        closed_settle_delay_s: float | None = None,
        on_root_changed: Callable[[str, bool], Awaitable[None]] | None = None,
        root_check_interval_s: float = ROOT_CHECK_INTERVAL_S,
    ) -> None:
        self._watches = list(watches)
        self._on_settled = on_settled
        self._on_root_changed = on_root_changed
        self._root_check_interval_s = root_check_interval_s
        self._ignore = ignore
        self._max_wait_s = max_wait_s
        self._tracker = SettleTracker(
            settle_delay_s=settle_delay_s,
            incomplete_timeout_s=incomplete_timeout_s,
            clock=clock,
            is_complete=is_complete,
            closed_settle_delay_s=closed_settle_delay_s,
        )
        self._wake = asyncio.Event()
        self._roots_stirred = asyncio.Event()
        self._roots: RootWatches | None = None
        self._task: asyncio.Task[None] | None = None
        self._follow_task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()  # directory walks, on_root_changed calls

    @property
    def tracked_count(self) -> int:
        return len(self._tracker)

    async def start(self) -> None:
        """Watches every existing root (and a parent of each) and starts the settle loop."""
        if self._task is not None:
            return
        from photonic.agent.fsevents import RootWatches  # imports watchdog

        roots = RootWatches(self._watches, asyncio.get_running_loop(), self._on_event,
                            self._roots_stirred.set)
        await asyncio.to_thread(roots.start)
        self._roots = roots
        self._task = asyncio.create_task(self._settle_loop(), name="photonic-watcher-settle")
        self._follow_task = asyncio.create_task(self._follow_roots(roots),
                                                name="photonic-watcher-roots")

    async def stop(self) -> None:
        """Stops the observer, the settle loop and the root checks; safe to call twice."""
        roots, self._roots = self._roots, None
        if roots is not None:
            await asyncio.to_thread(roots.stop, _OBSERVER_JOIN_TIMEOUT_S)
        tasks = [t for t in (self._task, self._follow_task, *self._side_tasks) if t is not None]
        self._task = self._follow_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _on_event(self, watch: WatchLike, event: FileSystemEvent) -> None:
        raw = event.dest_path if event.event_type == "moved" else event.src_path
        path = Path(os.fsdecode(raw))
        if event.is_directory:
            if event.event_type == "moved":
                self._spawn(self._touch_tree(watch, path))
            return
        self._touch(watch, path, closed=event.event_type == "closed")

    def _touch(self, watch: WatchLike, path: Path, *, closed: bool = False) -> None:
        try:
            relative = path.relative_to(watch.path).as_posix()
        except ValueError:
            return  # moved out of the watch
        if self._ignore is not None and self._ignore(watch.name, relative):
            return
        self._tracker.touch(watch.name, path, closed=closed)
        self._wake.set()

    def track(self, watch_name: str, path: Path) -> None:
        """Follows a file the reconcile scan found still being written, as if an event came."""
        watch = next((w for w in self._watches if w.name == watch_name), None)
        if watch is not None:
            self._touch(watch, path)

    async def _touch_tree(self, watch: WatchLike, root: Path) -> None:
        """A directory moved into (or within) a watch: its files are new paths too."""
        for path in await asyncio.to_thread(_walk_files, root, _MAX_WALK_FILES):
            self._touch(watch, path)

    async def _follow_roots(self, roots: RootWatches) -> None:
        """Refreshes the roots' watches at once when a handler saw a root (or a parent on the
        way to it) change, and every root_check_interval_s for what no event reports."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._roots_stirred.wait(), self._root_check_interval_s)
            self._roots_stirred.clear()  # before the look: a change during it wakes us again
            try:
                changes = await asyncio.to_thread(roots.refresh)
            except Exception:
                log.exception("refreshing the watch roots failed")
                continue
            for change in changes:
                self._spawn(self._root_changed(change))

    async def _root_changed(self, change: RootChange) -> None:
        if self._on_root_changed is None:
            return
        try:
            await self._on_root_changed(change.watch_name, change.present)
        except Exception:
            log.exception("on_root_changed failed", extra={"watch": change.watch_name})

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs work beside the loops; stop() cancels it."""
        task = asyncio.create_task(work)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _settle_loop(self) -> None:
        while True:
            self._wake.clear()
            if len(self._tracker):
                settled = await asyncio.to_thread(self._tracker.due)
                if settled:
                    await self._deliver(settled)
            wait_s = self._tracker.next_check_in_s()
            timeout_s = None if wait_s is None else min(wait_s, self._max_wait_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout_s)

    async def _deliver(self, settled: list[SettledFile]) -> None:
        try:
            await self._on_settled(settled)
        except Exception:
            log.exception("on_settled failed",
                          extra={"watch": ",".join(sorted({f.watch_name for f in settled}))})
