"""Finished runs' files are moved aside and deleted when the bench ends, not between tools.

Why: the root filesystem of the machines we bench on is ext4 without a journal, where the
kernel will not reuse an inode freed in the last five minutes and every inode allocation scans
past all of them (`find_inode_bit` -> `recently_deleted`). Deleting one tool's 10,000 files
made the next tool's file creations several times dearer, so each tool's figure depended on
what ran before it. A journaled filesystem, which any real server runs, never does this.
Deleting at the end gives every tool the same start; when the disk runs low, files are
deleted at once again (and the log says so).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("bench")

DEFAULT_KEEP_FREE_BYTES = 20_000_000_000


class Trash:
    """A folder on the bench's filesystem that collects what the runs are done with."""

    def __init__(self, root: Path, *, keep_free_bytes: int = DEFAULT_KEEP_FREE_BYTES) -> None:
        self.root = root
        self._keep_free = keep_free_bytes
        self._warned = False

    def discard(self, path: Path) -> None:
        if not path.exists():
            return
        if shutil.disk_usage(path).free < self._keep_free:
            if not self._warned:
                log.warning("less than %d GB free: deleting finished runs at once; later "
                            "figures may pay the no-journal inode penalty",
                            self._keep_free // 10**9)
                self._warned = True
            shutil.rmtree(path, ignore_errors=True)
            return
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            path.rename(self.root / f"{path.name}-{uuid.uuid4().hex[:8]}")
        except OSError:  # another filesystem, or a name the rename refuses: delete it now
            shutil.rmtree(path, ignore_errors=True)

    def empty(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


_active: Trash | None = None


def discard(path: Path) -> None:
    """Removes a finished run's files: into the active trash, or at once when there is none."""
    if _active is None or os.environ.get("BENCH_DELETE_AT_ONCE"):
        shutil.rmtree(path, ignore_errors=True)
    else:
        _active.discard(path)


@contextlib.contextmanager
def deferred_deletion(root: Path, *, keep_free_bytes: int = DEFAULT_KEEP_FREE_BYTES
                      ) -> Iterator[Trash]:
    """Within the block, `discard` moves files into root; they are deleted when it ends."""
    global _active
    trash = Trash(root, keep_free_bytes=keep_free_bytes)
    previous, _active = _active, trash
    try:
        yield trash
    finally:
        _active = previous
        trash.empty()
