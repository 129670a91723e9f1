"""One `syncfs(2)` makes a whole group of commits durable, where the filesystem can be trusted
to honour it.

Why: with thousands of small photos, an fsync per file and per folder was the largest share
of the server's system time (bench/README.md, seventh round: the small set ran 16% faster
with one syncfs per group). syncfs writes back every dirty inode of the store's filesystem
and flushes the disk's cache once, so a group of N photos costs one flush instead of 2N.

When it is used (`storage.sync_method: auto`, the default), all of these hold; otherwise the
server fsyncs file by file, as it always did:
- Linux 5.8 or later: only from 5.8 on does syncfs report write-back errors (an I/O error on
  any file of the filesystem since the descriptor last asked). Before that it stayed silent,
  and a photo whose bytes never reached the disk could be acknowledged.
- The store's filesystem is a local one whose syncfs is known to write back and flush: ext4,
  XFS, btrfs. FUSE (mergerfs, common on home servers), NFS and SMB may do nothing on syncfs
  while they honour fsync, so they keep per-file fsync.

The descriptor is opened once, when the server starts, before anything is written: syncfs
reports an error to a descriptor only when the error happened after that descriptor was
opened, and each error only once. GroupSync turns "once" into "to everyone who was writing
at the time" (see GroupSync.mark)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from photonic.models import SyncMethod

TRUSTED_FILESYSTEMS = frozenset({"ext4", "xfs", "btrfs"})
"""Local filesystems whose syncfs writes back every dirty inode and flushes the disk cache."""

MIN_KERNEL = (5, 8)
"""The first Linux whose syncfs reports write-back errors (commit 735e4ae5ba28)."""

MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class SyncChoice:
    """What the server will do, and why, in words for the startup log."""

    filesystem_wide: bool
    reason: str


def kernel_version(release: str) -> tuple[int, int]:
    """(major, minor) of a `uname -r` string such as '6.18.44-fc-v657'; (0, 0) if unreadable."""
    match = re.match(r"(\d+)\.(\d+)", release)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _unescape_mount_field(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem holding path (the mount with the longest matching mount
    point), or None when the mount table cannot be read (not Linux)."""
    if mountinfo is None:
        try:
            with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
                mountinfo = f.read()
        except OSError:
            return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        try:
            mount_point = _unescape_mount_field(fields[4])
            fs_type = fields[fields.index("-", 6) + 1]
        except (IndexError, ValueError):
            continue
        inside = (target == mount_point or mount_point == "/"
                  or target.startswith(mount_point.rstrip("/") + "/"))
        # Later lines win a tie: a mount stacked on the same point hides the earlier one.
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fs_type
    return best_type


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    """libc's syncfs (called with the GIL released), or None where libc has none (macOS).
    Looked up once: the server asks when it chooses its method and again when it opens."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def choose_sync(root: Path, method: SyncMethod, *, platform: str = sys.platform,
                release: str | None = None, mountinfo: str | None = None,
                has_syncfs: bool | None = None) -> SyncChoice:
    """Whether a store at root is synced filesystem-wide, and why (or why not)."""
    if method is SyncMethod.PER_FILE:
        return SyncChoice(False, "storage.sync_method is per-file")
    if not platform.startswith("linux"):
        return SyncChoice(False, f"syncfs is Linux-only (this is {platform})")
    release = os.uname().release if release is None else release
    if kernel_version(release) < MIN_KERNEL:
        return SyncChoice(False, f"Linux {release} is older than 5.8, whose syncfs does not "
                                 "report write errors")
    if has_syncfs is None:
        has_syncfs = _libc_syncfs() is not None
    if not has_syncfs:
        return SyncChoice(False, "the C library has no syncfs")
    fs_type = filesystem_type(root, mountinfo)
    if fs_type not in TRUSTED_FILESYSTEMS:
        return SyncChoice(False, f"the store is on {fs_type or 'an unknown filesystem'}, not "
                                 f"one of {', '.join(sorted(TRUSTED_FILESYSTEMS))}")
    return SyncChoice(True, f"the store is on {fs_type}, Linux {release}")


class FilesystemSync:
    """A descriptor on the store's root, opened before any write, and syncfs on it."""

    def __init__(self, root: Path, syncfs: Callable[[int], int] | None = None) -> None:
        """syncfs: the C function (the default); tests of failing disks pass their own."""
        function = syncfs or _libc_syncfs()
        if function is None:
            raise OSError(f"the C library has no syncfs; cannot sync {root} as a whole")
        self._syncfs = function
        self._fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)

    def sync(self) -> None:
        """Returns once every write to the filesystem so far is on the disk; raises OSError
        if any write-back failed since the last call (the bytes may be lost)."""
        if self._fd < 0:
            raise OSError("the store's filesystem sync is closed")
        if self._syncfs(self._fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"syncfs of the store's filesystem failed: {os.strerror(code)}")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
