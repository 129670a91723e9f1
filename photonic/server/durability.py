"""Group sync: many files finishing at once share their folder fsyncs and catalog commit.

An acknowledged photo must be durable: its content (fsynced before it is renamed into the
store), the store and library folder entries that name it, and its catalog rows. Syncing
those per file costs a folder fsync and a journal commit each, serialised behind one another
(small photos spent more time there than in transfer). Here a caller notes what it changed
and then waits for a barrier; one barrier run by one caller fsyncs every folder noted so far
and makes every catalog commit so far durable, and covers every caller that noted its changes
before the run began. Callers arriving during a run wait for the next one, which then covers
all of them at once: the classic group commit of databases, applied to the filesystem."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable

from photonic.media.hashing import fsync_directory


class GroupSync:
    """Coalesces folder fsyncs and catalog syncs of concurrent writers; thread-safe."""

    def __init__(self, sync_catalog: Callable[[], None]) -> None:
        self._sync_catalog = sync_catalog
        self._cond = threading.Condition()
        self._dirty_dirs: set[str] = set()
        self._started = 0  # barrier runs begun
        self._finished = 0  # the newest run that succeeded; every run before it did too
        self._running = False
        # How well barriers are shared (callers_covered / barriers_run); the tests read them.
        self.barriers_run = 0
        self.callers_covered = 0

    def note_dirs(self, dirs: Iterable[str | os.PathLike[str]]) -> None:
        """Records folders whose entries changed; the next barrier fsyncs them."""
        with self._cond:
            self._dirty_dirs.update(os.fspath(d) for d in dirs)

    def wait_durable(self) -> None:
        """Returns once every folder noted and every catalog commit made before this call is
        durable; raises the barrier's error (e.g. a full disk) if the run covering it failed."""
        with self._cond:
            needed = self._started + 1  # a run already going may have begun before our writes
            while self._finished < needed:
                if not self._running:
                    self._running = True
                    self._started += 1
                    run, dirs, self._dirty_dirs = self._started, self._dirty_dirs, set()
                    break
                self._cond.wait()
            else:
                self.callers_covered += 1
                return
        try:
            for d in sorted(dirs):
                # A folder removed since (by hand) names nothing left to make durable.
                with contextlib.suppress(FileNotFoundError):
                    fsync_directory(d)
            self._sync_catalog()
        except BaseException:
            with self._cond:
                # Not synced after all: the folders wait for the next run, which a waiter or
                # the next caller starts; nobody is told their writes are durable.
                self._dirty_dirs.update(dirs)
                self._running = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._running = False
            self._finished = run
            self.barriers_run += 1
            self.callers_covered += 1
            self._cond.notify_all()
