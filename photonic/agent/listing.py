"""Lists watch folders one directory at a time: which names count, and which are skipped and why.

Kept apart from the scanner so the rules for odd entries (symlinks out of the watch, FIFOs,
devices, names that are not UTF-8, the buffer inside a watch) live in one place, and so that
nothing here ever opens a file: opening a FIFO would block the scan.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from photonic.agent.ignore import IgnoreRules
from photonic.agent.signature import FileSignature

# The scanner's logger: a listing is one step of a scan, and log readers filter by that name.
log = logging.getLogger("photonic.agent.scanner")

OUTSIDE_WATCH = "symlink points outside the watch folder"
NOT_UTF8 = "name is not valid UTF-8"
NOT_REGULAR = "not a regular file"
SYMLINKED_FOLDER = "symlinked folder is not followed"
PERMISSION_DENIED = "permission denied"

ListedFile = tuple[str, str, os.stat_result]  # (relative path, absolute path, stat)


class Skip(Exception):
    """A file the scanner deliberately leaves alone; the message is the reason."""


@dataclass(frozen=True)
class Candidate:
    """A file whose signature (signature.py) differs from the index: it must be hashed."""

    rel_path: str
    abs_path: str
    size: int


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


def is_inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def stat_regular(root: str, path: str, *, is_symlink: bool) -> os.stat_result:
    """Stat of a file to sync, or Skip; never opens anything (a FIFO open would block)."""
    if is_symlink:
        if not is_inside(os.path.realpath(path), root):
            raise Skip(OUTSIDE_WATCH)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise Skip("broken symlink") from None
        if stat.S_ISDIR(st.st_mode):
            raise Skip(SYMLINKED_FOLDER)
    else:
        st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise Skip(NOT_REGULAR)
    return st


class DirectoryLister:
    """Applies the ignore rules and the skip rules to folder entries; knows nothing of the index.

    buffer_real is the agent's resolved buffer folder: when it sits inside a watch, its ingest
    copies must not be scanned as if they were new photos.
    """

    def __init__(self, ignore: IgnoreRules, buffer_real: str) -> None:
        self._ignore = ignore
        self._buffer_real = buffer_real

    def list_directory(self, watch_name: str, root: str, dir_abs: str, dir_rel: str) -> Listing:
        """One folder's subfolders, files and skips; a vanished folder lists as empty."""
        listing = Listing()
        try:
            with os.scandir(dir_abs) as entries:
                for entry in entries:
                    rel = f"{dir_rel}/{entry.name}" if dir_rel else entry.name
                    try:
                        self._list_entry(root, entry, rel, listing)
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
        return listing

    def _list_entry(self, root: str, entry: os.DirEntry[str], rel: str, listing: Listing) -> None:
        if not is_utf8(entry.name):
            raise Skip(NOT_UTF8)
        if entry.is_dir(follow_symlinks=False):
            if not self._ignore.matches(rel, is_dir=True) and entry.path != self._buffer_real:
                listing.subdirs.append((entry.path, rel))
            return
        if self._ignore.matches(rel, is_dir=False):
            return
        st = stat_regular(root, entry.path, is_symlink=entry.is_symlink())
        listing.files.append((rel, entry.path, st))

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
        st = stat_regular(root, path, is_symlink=os.path.islink(path))
        return rel, path, st
