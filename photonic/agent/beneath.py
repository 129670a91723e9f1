"""Opens folders and files beneath a trusted root (a watch folder, the ingest buffer) through
file descriptors, so that nothing swapped in between listing a file and reading it can lead a
read outside that root.

A path is checked once and then opened by name again later, and a local user who can write
inside a watch can swap a subfolder for a symlink in between (`renameat2(RENAME_EXCHANGE)` in a
loop wins that race within a few scans). So every component below the root is opened with
openat and O_NOFOLLOW: a symlink anywhere in the path makes the open fail instead of being
followed. The one symlink the agent does follow, a file's own symlink to a file inside the
watch, is resolved explicitly, checked to stay inside, and its target opened the same way.
The opened file's (st_dev, st_ino) is then compared with what the listing saw: a file moved or
replaced meanwhile, inside the watch or not, is refused rather than read.

The root itself is opened by its path and followed: it comes from the agent's configuration.
"""

from __future__ import annotations

import errno
import os
import stat

FileId = tuple[int, int]
"""(st_dev, st_ino): which file a stat describes, whatever its name is now."""

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC
_FOLDER_FLAGS = _ROOT_FLAGS | os.O_NOFOLLOW
# O_NONBLOCK: a FIFO swapped in for a listed file must not block the hashing thread on open.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
# What openat says when O_NOFOLLOW meets a symlink: ELOOP (Linux, macOS), EMLINK (FreeBSD);
# ENOTDIR when O_DIRECTORY meets a symlink or a file.
_NOT_FOLLOWED = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOTDIR})

REPLACED = "replaced while it was being read (a symlink or another file took its place)"
OUTSIDE = "symlink points outside the watch folder"
NOT_REGULAR = "not a regular file"


class Replaced(Exception):
    """The path no longer leads, without a symlink, to the file that was listed; the message
    is the reason shown to the user."""


def file_id(st: os.stat_result) -> FileId:
    return st.st_dev, st.st_ino


def is_inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _components(rel: str) -> list[str]:
    parts = rel.split("/") if rel else []
    if any(part in ("", ".", "..") for part in parts):
        raise Replaced(f"not a plain relative path: {rel!r}")
    return parts


def open_folder(root: str, rel_dir: str) -> int:
    """A descriptor of root/rel_dir, reached through no symlink below root; the caller
    closes it. Raises Replaced when a component is (now) a symlink or not a folder."""
    fd = os.open(root, _ROOT_FLAGS)
    try:
        for part in _components(rel_dir):
            try:
                child = os.open(part, _FOLDER_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in _NOT_FOLLOWED:
                    raise Replaced(REPLACED) from exc
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file_at(dir_fd: int, name: str, expected: FileId | None) -> tuple[int, os.stat_result]:
    """A read-only descriptor of the regular file `name` in dir_fd and its stat; the caller
    closes it. Raises Replaced when name is a symlink or not the file `expected` names."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise Replaced(REPLACED) from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Replaced(NOT_REGULAR)
        if expected is not None and file_id(st) != expected:
            raise Replaced(REPLACED)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def symlink_target(root: str, link_path: str) -> str | None:
    """Where the symlink at link_path leads, relative to root, or None when that is outside
    root. Only a name: the target is then opened by open_beneath, which follows nothing."""
    real = os.path.realpath(link_path)
    if not is_inside(real, root) or real == root:
        return None
    return os.path.relpath(real, root).replace(os.sep, "/")


def open_beneath(root: str, rel: str, *, expected: FileId | None = None,
                 follow_symlink: bool = False) -> tuple[int, os.stat_result]:
    """Opens the regular file root/rel through no symlink below root. With follow_symlink, a
    symlink as rel's last component is resolved once and its target, if inside root, opened
    the same way. Raises Replaced, or OSError (FileNotFoundError when it is gone)."""
    dir_rel, _, name = rel.rpartition("/")
    dir_fd = open_folder(root, dir_rel)
    try:
        return open_file_at(dir_fd, name, expected)
    except Replaced:
        if not follow_symlink or not _is_symlink_at(dir_fd, name):
            raise
    finally:
        os.close(dir_fd)
    target = symlink_target(root, f"{root.rstrip('/')}/{rel}")
    if target is None:
        raise Replaced(OUTSIDE)
    return open_beneath(root, target, expected=expected)


def _is_symlink_at(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


class FolderDescriptors:
    """Open folders of one group of files, each reached once through open_folder: the files
    of one folder are opened relative to one descriptor, so the hot path of a scan (thousands
    of small files a second) pays one openat chain per folder, not per file. Not shared
    between threads; close() when the group is done."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], int] = {}

    def folder(self, root: str, rel_dir: str) -> int:
        key = (root, rel_dir)
        fd = self._open.get(key)
        if fd is None:
            fd = self._open[key] = open_folder(root, rel_dir)
        return fd

    def open_listed(self, root: str, rel: str, expected: FileId) -> tuple[int, os.stat_result]:
        """The listed file root/rel, refused (Replaced) unless it is still `expected`."""
        dir_rel, _, name = rel.rpartition("/")
        return open_file_at(self.folder(root, dir_rel), name, expected)

    def close(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()
