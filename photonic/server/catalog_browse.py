"""The catalog's summaries that the dashboard reads on every page: each agent's totals at head
and the library's folder tree. Both are kept up to date inside the transaction of every version
that changes them (SqliteCatalog.commit_version is the only writer of heads and paths), so a
page reads a few rows instead of joining every head of a 100,000-photo library. Migration 007
backfilled them from the rows already recorded. A mixin of SqliteCatalog, like ShootTables."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


def folder_of(rel_path: str) -> str:
    """The folder a path sits in within its watch: '' at the top. The same rule as migration
    007's backfill (everything before the last '/')."""
    return rel_path.rpartition("/")[0]


def ancestry(folder: str) -> Iterator[tuple[str, str]]:
    """(parent, name) of folder, then of each folder above it, up to the watch's top."""
    while folder:
        parent, _, name = folder.rpartition("/")
        yield parent, name
        folder = parent


def note_new_path(c: sqlite3.Connection, agent_id: str, watch_name: str, rel_path: str,
                  sha256: str) -> None:
    """Inside the transaction that inserted a new path (its first version is its head): its
    folders exist, and its agent holds one more photo and its bytes."""
    for parent, name in ancestry(folder_of(rel_path)):
        added = c.execute(
            "INSERT OR IGNORE INTO library_folders (agent_id, watch_name, parent, name) "
            "VALUES (?, ?, ?, ?)", (agent_id, watch_name, parent, name)).rowcount
        if not added:  # a folder already recorded has its ancestors recorded too
            break
    _add_to_totals(c, agent_id, 1, NEW_PATH_BYTES_SQL, (sha256,))


def note_head_move(c: sqlite3.Connection, agent_id: str, location_id: int,
                   new_sha256: str) -> None:
    """Inside the transaction, before the head of an existing path moves to new content:
    the agent's bytes change by the difference (its photo count does not)."""
    _add_to_totals(c, agent_id, 0, HEAD_MOVE_BYTES_SQL, (new_sha256, location_id))


# The statements both engines run as written here (PostgreSQL through pg_catalog_writes.pg).
NEW_PATH_BYTES_SQL = "(SELECT size FROM photos WHERE sha256 = ?)"
"""What a new path adds to its agent's bytes."""
HEAD_MOVE_BYTES_SQL = (
    "(SELECT size FROM photos WHERE sha256 = ?) - COALESCE((SELECT p.size FROM "
    "locations l JOIN versions v ON v.location_id = l.id AND v.version = l.head_version "
    "JOIN photos p ON p.sha256 = v.sha256 WHERE l.id = ?), 0)")
"""What a head move adds to its agent's bytes: the new content's size less the old's."""
AGENT_TOTALS_SQL = "SELECT photos, bytes FROM agent_totals WHERE agent_id = ?"
NEXT_AGENT_SQL = "SELECT MIN(agent_id) FROM locations WHERE agent_id > ?"
NEXT_WATCH_SQL = "SELECT MIN(watch_name) FROM locations WHERE agent_id = ? AND watch_name > ?"
WATCH_HAS_PATHS_SQL = "SELECT 1 FROM locations WHERE agent_id = ? AND watch_name = ? LIMIT 1"
FOLDER_RECORDED_SQL = (
    "SELECT 1 FROM library_folders WHERE agent_id = ? AND watch_name = ? "
    "AND parent = ? AND name = ?")
CHILD_FOLDERS_SQL = (
    "SELECT name FROM library_folders WHERE agent_id = ? AND watch_name = ? "
    "AND parent = ? ORDER BY name LIMIT ?")
FOLDER_PHOTOS_SQL = (
    "SELECT l.id, l.rel_path, v.sha256, p.size, p.width * p.height, "
    "p.capture_time_ms, v.mtime_ns FROM locations l "
    "JOIN versions v ON v.location_id = l.id AND v.version = l.head_version "
    "JOIN photos p ON p.sha256 = v.sha256 "
    "WHERE l.agent_id = ? AND l.watch_name = ? AND l.folder = ? "
    "ORDER BY l.rel_path LIMIT ?")


def folder_photo(row: tuple[Any, ...]) -> FolderPhoto:
    """A FOLDER_PHOTOS_SQL row."""
    i, r, s, n, px, t, m = row
    return FolderPhoto(int(i), str(r), str(s), int(n), int(px or 0), int(t or 0),
                       int(t) if t and t > 0 else int(m or 0) // 1_000_000)


TOTALS_BY_AGENT_SQL = (
    "SELECT l.agent_id, COUNT(*), COALESCE(SUM(p.size), 0) FROM locations l "
    "JOIN versions v ON v.location_id = l.id AND v.version = l.head_version "
    "JOIN photos p ON p.sha256 = v.sha256 GROUP BY l.agent_id")
"""(agent, paths, bytes) counted from every head: what agent_totals holds, recounted."""


def _add_to_totals(c: sqlite3.Connection, agent_id: str, photos: int, bytes_sql: str,
                   args: tuple[object, ...]) -> None:
    c.execute(
        "INSERT INTO agent_totals (agent_id, photos, bytes) "
        f"VALUES (?, ?, COALESCE({bytes_sql}, 0)) ON CONFLICT (agent_id) DO UPDATE SET "
        "photos = photos + excluded.photos, bytes = bytes + excluded.bytes",
        (agent_id, photos, *args))


@dataclass(frozen=True)
class FolderPhoto:
    """A path directly in a library folder, with its head's content."""

    location_id: int
    rel_path: str
    sha256: str
    size: int
    pixels: int
    capture_time_ms: int
    taken_ms: int
    """The capture time, else the file's mtime as the agent sent it: the time shoots use."""


class BrowseTables:
    """Needs the SqliteCatalog's connection and lock."""

    _conn: sqlite3.Connection
    _lock: threading.Lock

    def _browse_rows(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())

    def agent_totals(self, agent_id: str) -> tuple[int, int]:
        """(paths, bytes) the agent's library holds at head, as maintained."""
        rows = self._browse_rows(AGENT_TOTALS_SQL, (agent_id,))
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    def recounted_totals(self) -> dict[str, tuple[int, int]]:
        """{agent: (paths, bytes)} counted from every head: what agent_totals must equal
        (a join over the whole library, for tests and checks, never for a page)."""
        return {str(a): (int(n), int(b))
                for a, n, b in self._browse_rows(TOTALS_BY_AGENT_SQL, ())}

    def library_agents(self) -> list[str]:
        """Agents with at least one path: one index probe per agent (a skip scan), not a
        read of every path."""
        return self._distinct_in_index(NEXT_AGENT_SQL, ())

    def library_watches(self, agent_id: str) -> list[str]:
        return self._distinct_in_index(NEXT_WATCH_SQL, (agent_id,))

    def _distinct_in_index(self, next_sql: str, leading: tuple[object, ...]) -> list[str]:
        """Each distinct value in turn, from the smallest: next_sql answers the smallest
        value above the last one (its final placeholder)."""
        found: list[str] = []
        last = ""
        with self._lock:
            while True:
                row = self._conn.execute(next_sql, (*leading, last)).fetchone()
                if row is None or row[0] is None:
                    return found
                last = str(row[0])
                found.append(last)

    def folder_exists(self, agent_id: str, watch_name: str, folder: str) -> bool:
        """Whether the watch ('' folder) or a folder within it holds any path."""
        if not folder:
            return bool(self._browse_rows(WATCH_HAS_PATHS_SQL, (agent_id, watch_name)))
        parent, _, name = folder.rpartition("/")
        return bool(self._browse_rows(FOLDER_RECORDED_SQL, (agent_id, watch_name, parent, name)))

    def child_folders(self, agent_id: str, watch_name: str, folder: str, limit: int
                      ) -> list[str]:
        """Names of the folders directly in folder ('' = the watch's top), by name."""
        return [str(r[0]) for r in self._browse_rows(
            CHILD_FOLDERS_SQL, (agent_id, watch_name, folder, limit))]

    def folder_photos(self, agent_id: str, watch_name: str, folder: str, limit: int
                      ) -> list[FolderPhoto]:
        """The paths directly in folder ('' = the watch's top) by path, with their heads."""
        return [folder_photo(row) for row in self._browse_rows(
            FOLDER_PHOTOS_SQL, (agent_id, watch_name, folder, limit))]
