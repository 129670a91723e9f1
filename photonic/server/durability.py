"""Group sync: many files finishing at once share their folder fsyncs and catalog commit.

An acknowledged photo must be durable: its content (fsynced before it is renamed into the
store), the store and library folder entries that name it, and its catalog rows. Syncing
those per file costs a folder fsync and a journal commit each, serialised behind one another
(small photos spent more time there than in transfer). Here a caller notes what it changed
and then waits for a barrier; one barrier run by one caller fsyncs every folder noted so far
and makes every catalog commit so far durable, and covers every caller that noted its changes
before the run began. Callers arriving during a run wait for the next one, which then covers
all of them at once: the classic group commit of databases, applied to the filesystem.

Where the store's filesystem allows it (fs_sync.py), a run is one syncfs instead of an fsync
per folder, and then it covers file contents too: the store asks for a barrier before it
renames content into objects/, instead of fsyncing each file.

A run that fails (an I/O error, a full disk) fails every caller whose writes were under way
when it failed, not only the caller that ran it: syncfs reports an error once, to whichever
run asks first, and that may not be the run covering the file that was lost. Callers take a
mark before they write and hand it to wait_durable."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable

from photonic.errors import Transient
from photonic.media.hashing import fsync_directory
from photonic.server.fs_sync import FilesystemSync


class GroupSync:
    """Coalesces folder fsyncs and catalog syncs of concurrent writers; thread-safe."""

    def __init__(self, sync_catalog: Callable[[], None],
                 filesystem: FilesystemSync | None = None) -> None:
        """filesystem: sync the store's whole filesystem per run (contents included) instead
        of the folders noted; None fsyncs folder by folder and leaves contents to the writer."""
        self._sync_catalog = sync_catalog
        self._filesystem = filesystem
        self._cond = threading.Condition()
        self._dirty_dirs: set[str] = set()
        self._started = 0  # barrier runs begun
        self._finished = 0  # the newest run that succeeded; every run before it did too
        self._running = False
        self._failures = 0  # runs that failed so far; see mark()
        # How well barriers are shared (callers_covered / barriers_run); the tests read them.
        self.barriers_run = 0
        self.callers_covered = 0

    @property
    def covers_contents(self) -> bool:
        """True when a run makes file contents durable too, so writers need not fsync them."""
        return self._filesystem is not None

    def mark(self) -> int:
        """Taken before writing; wait_durable(since=mark) then fails if any run failed after
        it, since a failed run may have lost these writes even if a later run succeeds."""
        with self._cond:
            return self._failures

    def note_failure(self) -> None:
        """A sync outside a barrier run failed (a file's own fsync, in per-file mode): every
        writer whose mark predates it is failed as if a run had failed, since the same
        failing disk may have lost their bytes too."""
        with self._cond:
            self._failures += 1

    def failed_since(self, mark: int) -> bool:
        """Whether any sync failed after `mark` was taken."""
        with self._cond:
            return self._failures > mark

    def note_dirs(self, dirs: Iterable[str | os.PathLike[str]]) -> None:
        """Records folders whose entries changed; the next barrier fsyncs them (a filesystem
        sync covers them without a list)."""
        if self._filesystem is not None:
            return
        with self._cond:
            self._dirty_dirs.update(os.fspath(d) for d in dirs)

    def wait_durable(self, since: int | None = None) -> None:
        """Returns once every folder noted and every catalog commit made before this call
        (and, when covers_contents, every file write) is durable. Raises the run's error (e.g.
        a full disk) if the run covering it failed, and Transient if a run failed after the
        mark `since` was taken."""
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
                self._raise_if_failed_since(since)
                return
        try:
            self._sync(dirs)
        except BaseException:
            with self._cond:
                # Not synced after all: the folders wait for the next run, which a waiter or
                # the next caller starts; nobody is told their writes are durable.
                self._dirty_dirs.update(dirs)
                self._failures += 1
                self._running = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._running = False
            self._finished = run
            self.barriers_run += 1
            self.callers_covered += 1
            self._cond.notify_all()
            self._raise_if_failed_since(since)

    def _sync(self, dirs: set[str]) -> None:
        if self._filesystem is not None:
            self._filesystem.sync()
        else:
            for d in sorted(dirs):
                # A folder removed since (by hand) names nothing left to make durable.
                with contextlib.suppress(FileNotFoundError):
                    fsync_directory(d)
        self._sync_catalog()

    def _raise_if_failed_since(self, since: int | None) -> None:
        if since is not None and self._failures > since:
            raise Transient("the server's disk reported a write error while these photos were "
                            "being stored; they will be sent again")
