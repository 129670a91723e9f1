"""The catalog's reads for the library exported as a file tree (WebDAV): every recorded
version of every path in one library folder, in keyset pages, and one file found by its name
in the tree. A mixin of both catalogs (its SQL both engines take: sql_access); the names it
answers are the ones the library tree on disk has (a version's recorded library path), so the
export and the disk agree."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from photonic.server.sql_access import SqlAccess

_VERSION_NAME = re.compile(r"^(?P<stem>.+)\.v\d+(?:~\d+)?(?P<suffix>\.[^.]*)?$")
"""`name.vN.ext` (paths.version_path): an older version, kept beside its path's head."""

_FILE_COLUMNS = (
    "SELECT l.rel_path, v.version, v.library_path, v.sha256, p.size, v.created_ms, "
    "v.mtime_ns FROM locations l JOIN versions v ON v.location_id = l.id "
    "JOIN photos p ON p.sha256 = v.sha256 ")


@dataclass(frozen=True)
class TreeFile:
    """One recorded version as a file of the library tree."""

    name: str
    """Its file name in the tree: the last part of its library path (`a.jpg`, `a.v1.jpg`)."""
    rel_path: str
    """The path it is a version of, within its watch."""
    version: int
    sha256: str
    size: int
    created_ms: int
    """When the catalog recorded it."""
    mtime_ns: int
    """The file's mtime as its agent sent it (0: not sent)."""


def _file(row: tuple[Any, ...]) -> TreeFile:
    rel, version, library_path, sha, size, created, mtime = row
    return TreeFile(str(library_path).rpartition("/")[2], str(rel), int(version), str(sha),
                    int(size), int(created), int(mtime or 0))


def unversioned_candidates(folder: str, name: str) -> list[str]:
    """The paths (within a watch) whose head or older version may be called name in folder:
    the plain path, and the path a `name.vN.ext` version name was made from."""
    prefix = f"{folder}/" if folder else ""
    found = [prefix + name]
    match = _VERSION_NAME.match(name)
    if match is not None:
        found.append(prefix + match["stem"] + (match["suffix"] or ""))
    return found


class TreeTables(SqlAccess):
    def _tree_rows(self, sql: str, args: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._sql_read() as c:
            return list(c.execute(sql, tuple(args)).fetchall())

    def folder_files_page(self, agent_id: str, watch_name: str, folder: str,
                          after: tuple[str, int] | None, limit: int) -> list[TreeFile]:
        """Up to limit versions of the paths directly in folder ('' = the watch's top), by
        (path, version), after the (path, version) the previous page ended with: one range
        of the folder index per page, however large the folder."""
        rel, version = after if after is not None else ("", -1)
        return [_file(r) for r in self._tree_rows(
            _FILE_COLUMNS + "WHERE l.agent_id = ? AND l.watch_name = ? AND l.folder = ? "
            "AND l.rel_path >= ? AND (l.rel_path > ? OR v.version > ?) "
            "ORDER BY l.rel_path, v.version LIMIT ?",
            (agent_id, watch_name, folder, rel, rel, version, limit))]

    def child_folders_after(self, agent_id: str, watch_name: str, folder: str, after: str,
                            limit: int) -> list[str]:
        """Up to limit names of the folders directly in folder, by name, after `after`."""
        return [str(r[0]) for r in self._tree_rows(
            "SELECT name FROM library_folders WHERE agent_id = ? AND watch_name = ? "
            "AND parent = ? AND name > ? ORDER BY name LIMIT ?",
            (agent_id, watch_name, folder, after, limit))]

    def tree_file(self, agent_id: str, watch_name: str, folder: str, name: str
                  ) -> TreeFile | None:
        """The version called name in folder, or None. Looked up by the paths the name can
        belong to (unique index); only a version name the rule cannot undo (a stem shortened
        to fit) falls back to reading the folder's rows."""
        suffix = "/" + name
        picked = _FILE_COLUMNS + (
            "WHERE l.agent_id = ? AND l.watch_name = ? AND {where} "
            "AND substr(v.library_path, length(v.library_path) - ? + 1) = ? "
            "ORDER BY v.version LIMIT 1")
        for rel in unversioned_candidates(folder, name):
            rows = self._tree_rows(picked.format(where="l.rel_path = ?"),
                                   (agent_id, watch_name, rel, len(suffix), suffix))
            if rows:
                return _file(rows[0])
        if _VERSION_NAME.match(name) is None:
            return None
        rows = self._tree_rows(picked.format(where="l.folder = ?"),
                               (agent_id, watch_name, folder, len(suffix), suffix))
        return _file(rows[0]) if rows else None
