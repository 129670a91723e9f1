"""The catalog's per-photo reads and writes as SQL on a connection, so the same statements
serve one photo in a transaction of its own (SqliteCatalog) and many photos in one shared
transaction (OpenTransaction: a manifest of stored photos recorded in a few commits, not a
commit, with its write-ahead-log frames, per photo)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from photonic.models import ExifSummary
from photonic.server.catalog_browse import folder_of, note_head_move, note_new_path


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class LocationHead:
    """What the library holds at one path now: its head version and the newest version number."""

    location_id: int
    head_version: int
    head_sha256: str
    head_library_path: str
    max_version: int


ObjectCheckRow = tuple[int, int]
"""(size, mtime_ns) of an object whose bytes were just found to hash to its name."""


@dataclass(frozen=True)
class NewVersion:
    """A version to record in one transaction, with the library moves it implies."""

    agent_id: str
    watch_name: str
    rel_path: str
    sha256: str
    size: int
    exif: ExifSummary
    version: int
    library_path: str
    make_head: bool
    mtime_ns: int = 0
    incomplete: bool = False
    relocated_head_path: str | None = None  # the old head's new home (name.vN.ext)
    conflict_server_sha256: str | None = None
    conflict_resolution: str | None = None  # None: parked, open until an admin resolves it
    object_check: ObjectCheckRow | None = None  # the object was just verified: (size, mtime_ns)
    known_location: int | None = None
    """The path's location id when the caller read its head under the library lock (0: the
    path is new): an engine may then write without asking for it (PostgreSQL: no round trip
    a photo). None: unknown, the engine finds or makes the location itself."""


class CatalogWrites(Protocol):
    """What the library reads and writes for each photo it records."""

    def get_head(self, agent_id: str, watch_name: str, rel_path: str) -> LocationHead | None: ...
    def get_heads(self, agent_id: str, paths: Sequence[tuple[str, str]]
                  ) -> dict[tuple[str, str], LocationHead]:
        """The heads of several (watch, path)s at once; a new path is absent."""
        ...
    def find_version(self, location_id: int, sha256: str,
                     mtime_ns: int) -> tuple[int, str] | None: ...
    def commit_version(self, v: NewVersion, *, durable: bool = True) -> int | None: ...
    def park_conflict(self, agent_id: str, watch: str, rel: str, server_sha256: str,
                      incoming_sha256: str, size: int, exif: ExifSummary,
                      mtime_ns: int) -> int: ...
    def record_verified(self, checks: Sequence[tuple[str, int, int]], *,
                        durable: bool = False) -> None: ...


class OpenTransaction:
    """CatalogWrites inside a write transaction its owner opened (SqliteCatalog.writing) and
    commits: they see each other's rows, and become durable only with a later durable commit
    (make_durable), which the library waits for before any of them is acknowledged. So the
    `durable` flags are the owner's, and ignored here."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def get_head(self, agent_id: str, watch_name: str, rel_path: str) -> LocationHead | None:
        return read_head(self._c, agent_id, watch_name, rel_path)

    def get_heads(self, agent_id: str, paths: Sequence[tuple[str, str]]
                  ) -> dict[tuple[str, str], LocationHead]:
        return read_heads(self._c, agent_id, paths)

    def find_version(self, location_id: int, sha256: str,
                     mtime_ns: int) -> tuple[int, str] | None:
        return read_version(self._c, location_id, sha256, mtime_ns)

    def commit_version(self, v: NewVersion, *, durable: bool = True) -> int | None:
        return write_version(self._c, v)

    def park_conflict(self, agent_id: str, watch: str, rel: str, server_sha256: str,
                      incoming_sha256: str, size: int, exif: ExifSummary, mtime_ns: int) -> int:
        return write_parked_conflict(self._c, agent_id, watch, rel, server_sha256,
                                     incoming_sha256, size, exif, mtime_ns)

    def record_verified(self, checks: Sequence[tuple[str, int, int]], *,
                        durable: bool = False) -> None:
        upsert_checks(self._c, checks, now_ms())


# The statements both engines run as written here; PostgreSQL takes them through
# pg_catalog_writes.pg (its %s placeholders for SQLite's ?). Where the dialects differ, each
# engine has its own function for that statement.
READ_HEAD_SQL = (
    "SELECT l.id, l.head_version, v.sha256, v.library_path, "
    "(SELECT MAX(version) FROM versions WHERE location_id = l.id) "
    "FROM locations l "
    "JOIN versions v ON v.location_id = l.id AND v.version = l.head_version "
    "WHERE l.agent_id = ? AND l.watch_name = ? AND l.rel_path = ?")
READ_VERSION_SQL = (
    "SELECT version, library_path FROM versions WHERE location_id = ? AND sha256 = ? "
    "AND mtime_ns = ? ORDER BY version DESC LIMIT 1")
RELOCATE_HEAD_SQL = (
    "UPDATE versions SET library_path = ? WHERE location_id = ? AND version = "
    "(SELECT head_version FROM locations WHERE id = ?)")
INSERT_VERSION_SQL = (
    "INSERT INTO versions (location_id, version, sha256, library_path, created_ms, "
    "mtime_ns, incomplete) VALUES (?, ?, ?, ?, ?, ?, ?)")
MOVE_HEAD_SQL = "UPDATE locations SET head_version = ? WHERE id = ?"
AGENT_SYNCED_SQL = "UPDATE agents SET last_sync_ms = ? WHERE agent_id = ?"
INSERT_SETTLED_CONFLICT_SQL = (
    "INSERT INTO conflicts (location_id, server_sha256, incoming_sha256, "
    "incoming_mtime_ns, created_ms, resolved_ms, resolution) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)")
INSERT_PARKED_CONFLICT_SQL = (
    "INSERT INTO conflicts (location_id, server_sha256, incoming_sha256, "
    "incoming_mtime_ns, created_ms) VALUES (?, ?, ?, ?, ?)")
UPSERT_CHECK_SQL = (
    "INSERT INTO object_checks (sha256, size, mtime_ns, verified_ms) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (sha256) DO UPDATE SET size = excluded.size, "
    "mtime_ns = excluded.mtime_ns, verified_ms = excluded.verified_ms")
INSERT_PHOTO_SQL = (
    "INSERT INTO photos (sha256, size, stored_ms, capture_time_ms, camera, lens, has_gps, "
    "width, height) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING")


def head_of(row: tuple[Any, ...] | None) -> LocationHead | None:
    """A READ_HEAD_SQL row as a LocationHead."""
    if row is None:
        return None
    loc, head, sha, path, max_version = row
    return LocationHead(int(loc), int(head), str(sha), str(path), int(max_version))


def photo_args(sha256: str, size: int, exif: ExifSummary, ts: int) -> tuple[object, ...]:
    """INSERT_PHOTO_SQL's arguments."""
    return (sha256, size, ts, exif.capture_time_unix_ms, exif.camera, exif.lens_model,
            int(exif.has_gps), exif.width, exif.height)


def read_head(c: sqlite3.Connection, agent_id: str, watch_name: str,
              rel_path: str) -> LocationHead | None:
    return head_of(c.execute(READ_HEAD_SQL, (agent_id, watch_name, rel_path)).fetchone())


def read_heads(c: sqlite3.Connection, agent_id: str, paths: Sequence[tuple[str, str]]
               ) -> dict[tuple[str, str], LocationHead]:
    """One indexed lookup a path: SQLite answers in-process, there is no round trip to save."""
    found = {}
    for watch, rel in paths:
        head = read_head(c, agent_id, watch, rel)
        if head is not None:
            found[(watch, rel)] = head
    return found


def read_version(c: sqlite3.Connection, location_id: int, sha256: str,
                 mtime_ns: int) -> tuple[int, str] | None:
    """(version, library_path) of a version with this content and mtime, if recorded."""
    row = c.execute(READ_VERSION_SQL, (location_id, sha256, mtime_ns)).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def write_version(c: sqlite3.Connection, v: NewVersion) -> int | None:
    """Records a version (and the head move it implies); returns the conflict id, if any."""
    ts = now_ms()
    insert_photo(c, v.sha256, v.size, v.exif)
    if v.object_check is not None:
        upsert_checks(c, [(v.sha256, *v.object_check)], ts)
    loc_id, new_path = upsert_location(c, v.agent_id, v.watch_name, v.rel_path, v.version)
    if new_path:  # its first version is its head, whatever make_head says
        note_new_path(c, v.agent_id, v.watch_name, v.rel_path, v.sha256)
    if v.relocated_head_path is not None:
        c.execute(RELOCATE_HEAD_SQL, (v.relocated_head_path, loc_id, loc_id))
    c.execute(INSERT_VERSION_SQL, (loc_id, v.version, v.sha256, v.library_path, ts,
                                   v.mtime_ns, int(v.incomplete)))
    if v.make_head and not new_path:
        note_head_move(c, v.agent_id, loc_id, v.sha256)
        c.execute(MOVE_HEAD_SQL, (v.version, loc_id))
    c.execute(AGENT_SYNCED_SQL, (ts, v.agent_id))
    if v.conflict_server_sha256 is None:
        return None
    cur = c.execute(INSERT_SETTLED_CONFLICT_SQL, settled_conflict_args(loc_id, v, ts))
    return int(cur.lastrowid or 0)


def settled_conflict_args(loc_id: int, v: NewVersion, ts: int) -> tuple[object, ...]:
    """INSERT_SETTLED_CONFLICT_SQL's arguments: a conflict the policy resolved at once."""
    return (loc_id, v.conflict_server_sha256, v.sha256, v.mtime_ns, ts, ts,
            v.conflict_resolution)


def write_parked_conflict(c: sqlite3.Connection, agent_id: str, watch: str, rel: str,
                          server_sha256: str, incoming_sha256: str, size: int,
                          exif: ExifSummary, mtime_ns: int) -> int:
    """Keeps an incoming version (content + an open conflict) without touching the library,
    for `manual` resolution; the same parked content twice is one conflict."""
    insert_photo(c, incoming_sha256, size, exif)
    row = c.execute(
        "SELECT c.id FROM conflicts c JOIN locations l ON l.id = c.location_id "
        "WHERE l.agent_id = ? AND l.watch_name = ? AND l.rel_path = ? "
        "AND c.incoming_sha256 = ? AND c.resolved_ms IS NULL",
        (agent_id, watch, rel, incoming_sha256),
    ).fetchone()
    if row is not None:
        return int(row[0])
    loc = c.execute(
        "SELECT id FROM locations WHERE agent_id = ? AND watch_name = ? AND rel_path = ?",
        (agent_id, watch, rel),
    ).fetchone()
    cur = c.execute(INSERT_PARKED_CONFLICT_SQL,
                    (int(loc[0]), server_sha256, incoming_sha256, mtime_ns, now_ms()))
    return int(cur.lastrowid or 0)


def upsert_checks(c: sqlite3.Connection, checks: Sequence[tuple[str, int, int]],
                  ts: int) -> None:
    c.executemany(UPSERT_CHECK_SQL, [(sha, size, mtime_ns, ts) for sha, size, mtime_ns in checks])


def insert_photo(c: sqlite3.Connection, sha256: str, size: int, exif: ExifSummary) -> None:
    c.execute(INSERT_PHOTO_SQL, photo_args(sha256, size, exif, now_ms()))


def upsert_location(c: sqlite3.Connection, agent: str, watch: str, rel: str,
                    version: int) -> tuple[int, bool]:
    """(the path's location id, whether this call inserted it with version as its head)."""
    row = c.execute(
        "SELECT id FROM locations WHERE agent_id = ? AND watch_name = ? AND rel_path = ?",
        (agent, watch, rel),
    ).fetchone()
    if row is not None:
        return int(row[0]), False
    cur = c.execute(
        "INSERT INTO locations (agent_id, watch_name, rel_path, head_version, folder) "
        "VALUES (?, ?, ?, ?, ?)",
        (agent, watch, rel, version, folder_of(rel)),
    )
    return int(cur.lastrowid or 0), True
