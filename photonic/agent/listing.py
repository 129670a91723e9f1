"""Lists watch folders one directory at a time: which names count, and which are skipped and why.

Kept apart from the scanner so the rules for odd entries (symlinks out of the watch, FIFOs,
devices, names that are not UTF-8, the buffer inside a watch) live in one place, and so that
nothing here ever opens a file: opening a FIFO would block the scan. Folders are opened through
beneath.py, never by path: a subfolder swapped for a symlink is not listed through.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from photonic.agent.beneath import (
    OUTSIDE,
    FileId,
    Replaced,
    file_id,
    is_inside,
    open_folder,
    symlink_target,
)
from photonic.agent.ignore import IgnoreRules
from photonic.agent.signature import FileSignature

# The scanner's logger: a listing is one step of a scan, and log readers filter by that name.
log = logging.getLogger("photonic.agent.scanner")

OUTSIDE_WATCH = OUTSIDE
NOT_UTF8 = "name is not valid UTF-8"
NOT_REGULAR = "not a regular file"
SYMLINKED_FOLDER = "symlinked folder is not followed"
PERMISSION_DENIED = "permission denied"


class ListedFile(NamedTuple):
    """A file to sync as the listing saw it."""

    rel_path: str
    abs_path: str
    stat: os.stat_result
    open_rel: str  # what to open beneath the root: rel_path, or a symlink's target inside


class Skip(Exception):
    """A file the scanner deliberately leaves alone; the message is the reason."""


@dataclass(frozen=True)
class Candidate:
    """A file whose signature (signature.py) differs from the index: it must be hashed.

    The hasher opens open_rel beneath root (beneath.py) and reads it only if it is still the
    file listed (file_id)."""

    rel_path: str
    abs_path: str
    size: int
    root: str
    open_rel: str
    file_id: FileId


def candidate_of(root: str, listed: ListedFile) -> Candidate:
    return Candidate(listed.rel_path, listed.abs_path, listed.stat.st_size, root,
                     listed.open_rel, file_id(listed.stat))


@dataclass(frozen=True)
class Listing:
    """What one directory holds: the lister fills subdirs, files and skipped, then the scanner
    sorts the files into its piles (candidates, unchanged, present, in_flight) against the
    index."""

    subdirs: list[tuple[str, str]] = field(default_factory=list)  # (absolute, relative)
    candidates: list[Candidate] = field(default_factory=list)
    unchanged: list[tuple[str, FileSignature]] = field(default_factory=list)  # for touch_many
    present: list[str] = field(default_factory=list)  # unchanged, and the index row needs no write
    skipped: list[tuple[str, str]] = field(default_factory=list)
    files: list[ListedFile] = field(default_factory=list)  # before sorting
    in_flight: list[str] = field(default_factory=list)  # absolute paths still being written

    @property
    def files_seen(self) -> int:
        return len(self.candidates) + len(self.unchanged) + len(self.present)


def is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # surrogateescape'd bytes from a non-UTF-8 file name
        return False
    return True


def stat_symlinked(root: str, path: str) -> tuple[os.stat_result, str]:
    """Stat of the file a symlink leads to and its path beneath root, or Skip. The stat is
    only what the hasher compares the opened target with (beneath.py): this one follows the
    link by path, so it may describe another file if the folders are being swapped."""
    target = symlink_target(root, path)
    if target is None:
        raise Skip(OUTSIDE_WATCH)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise Skip("broken symlink") from None
    if stat.S_ISDIR(st.st_mode):
        raise Skip(SYMLINKED_FOLDER)
    if not stat.S_ISREG(st.st_mode):
        raise Skip(NOT_REGULAR)
    return st, target


def stat_regular(root: str, path: str, rel: str, *, is_symlink: bool) -> ListedFile:
    """A file to sync, or Skip; never opens anything (a FIFO open would block)."""
    if is_symlink:
        st, target = stat_symlinked(root, path)
        return ListedFile(rel, path, st, target)
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise Skip(NOT_REGULAR)
    return ListedFile(rel, path, st, rel)


class DirectoryLister:
    """Applies the ignore rules and the skip rules to folder entries; knows nothing of the index.

    buffer_real is the agent's resolved buffer folder: when it sits inside a watch, its ingest
    copies must not be scanned as if they were new photos.
    """

    def __init__(self, ignore: IgnoreRules, buffer_real: str) -> None:
        self._ignore = ignore
        self._buffer_real = buffer_real

    def list_directory(self, watch_name: str, root: str, dir_abs: str, dir_rel: str) -> Listing:
        """One folder's subfolders, files and skips; a vanished folder lists as empty. The
        folder is opened beneath root (never through a symlink) and its entries are
        stat-ed relative to that descriptor."""
        listing = Listing()
        try:
            dir_fd = open_folder(root, dir_rel)
        except FileNotFoundError:
            return listing
        except Replaced as exc:
            listing.skipped.append((dir_rel or ".", str(exc)))
            return listing
        except OSError as exc:
            log.warning("unreadable folder", extra={"watch": watch_name, "path": dir_rel or "."})
            listing.skipped.append((dir_rel or ".", exc.strerror or str(exc)))
            return listing
        try:
            self._list_entries(watch_name, root, dir_fd, dir_abs, dir_rel, listing)
        finally:
            os.close(dir_fd)
        return listing

    def _list_entries(self, watch_name: str, root: str, dir_fd: int, dir_abs: str,
                      dir_rel: str, listing: Listing) -> None:
        try:
            with os.scandir(dir_fd) as entries:  # scandir works on its own duplicate
                for entry in entries:
                    rel = f"{dir_rel}/{entry.name}" if dir_rel else entry.name
                    try:
                        self._list_entry(root, entry, f"{dir_abs}/{entry.name}", rel, listing)
                    except FileNotFoundError:
                        continue  # vanished between listing and stat: nothing to do
                    except Skip as skip:
                        listing.skipped.append((rel, str(skip)))
                    except PermissionError:
                        log.warning("unreadable file", extra={"watch": watch_name, "path": rel})
                        listing.skipped.append((rel, PERMISSION_DENIED))
                    except OSError as exc:
                        listing.skipped.append((rel, exc.strerror or str(exc)))
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("unreadable folder", extra={"watch": watch_name, "path": dir_rel or "."})
            listing.skipped.append((dir_rel or ".", exc.strerror or str(exc)))

    def _list_entry(self, root: str, entry: os.DirEntry[str], path: str, rel: str,
                    listing: Listing) -> None:
        if not is_utf8(entry.name):
            raise Skip(NOT_UTF8)
        if entry.is_dir(follow_symlinks=False):
            if not self._ignore.matches(rel, is_dir=True) and path != self._buffer_real:
                listing.subdirs.append((path, rel))
            return
        if self._ignore.matches(rel, is_dir=False):
            return
        if entry.is_symlink():
            st, target = stat_symlinked(root, path)
            listing.files.append(ListedFile(rel, path, st, target))
            return
        st = entry.stat(follow_symlinks=False)  # fstatat on the folder's descriptor
        if not stat.S_ISREG(st.st_mode):
            raise Skip(NOT_REGULAR)
        listing.files.append(ListedFile(rel, path, st, rel))

    def probe(self, root: str, abs_path: Path) -> ListedFile | None:
        """The watcher's single-file version of list_directory: the file if it is one to sync,
        None when it lies outside the watch, in the buffer or is ignored; Skip or OSError when
        it is skipped or cannot be stat-ed."""
        # Resolve the folders but not the file itself, whose own symlink is judged below.
        parent = os.path.realpath(os.path.dirname(os.path.abspath(abs_path)))
        path = os.path.join(parent, os.path.basename(abs_path))
        in_buffer = is_inside(parent, self._buffer_real) and is_inside(self._buffer_real, root)
        if not is_inside(parent, root) or in_buffer:
            return None
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        if rel.startswith("../") or not is_utf8(rel):
            return None
        if self._ignore.is_ignored(rel, is_dir=False):
            return None
        return stat_regular(root, path, rel, is_symlink=os.path.islink(path))
