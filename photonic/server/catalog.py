"""The server's catalog of photos, paths, versions, agents, conflicts and audit: the Catalog
protocol every caller is typed against, and SqliteCatalog, the embedded engine behind it
(storage/pg_catalog.py is the PostgreSQL one, for several servers)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from photonic.models import ExifSummary
from photonic.server.catalog_agents import AgentRow, AgentTables
from photonic.server.catalog_browse import BrowseTables, FolderPhoto
from photonic.server.catalog_multipart import MultipartTables
from photonic.server.catalog_sessions import SessionTables
from photonic.server.catalog_shoots import (
    CatalogPhoto,
    PhotoPage,
    ReportedShoot,
    ShootTables,
)
from photonic.server.catalog_tree import TreeFile, TreeTables
from photonic.server.catalog_writes import (
    CatalogWrites,
    OpenTransaction,
    read_head,
    read_heads,
    read_version,
    upsert_checks,
    write_parked_conflict,
    write_version,
)
from photonic.server.catalog_writes import LocationHead as LocationHead
from photonic.server.catalog_writes import NewVersion as NewVersion
from photonic.server.catalog_writes import ObjectCheckRow as ObjectCheckRow
from photonic.server.catalog_writes import now_ms as now_ms
from photonic.server.sql_access import Executor
from photonic.server.storage.multipart import MultipartLedger
from photonic.shoots import PendingShoot
from photonic.sqlite_db import open_database, transaction

_IN_BATCH = 500
"""Values per `IN (...)` list: well under SQLite's variable limit."""


@dataclass(frozen=True)
class HeadPhoto:
    """A path's current content, as jobs choose their inputs."""

    rel_path: str
    sha256: str
    size: int
    pixels: int
    capture_time_ms: int


@dataclass(frozen=True)
class ConflictRow:
    id: int
    agent_id: str
    watch_name: str
    rel_path: str
    server_sha256: str
    incoming_sha256: str
    incoming_mtime_ns: int
    created_ms: int


@dataclass(frozen=True)
class VerifiedObject:
    """An object's bytes as last verified: trusted while its size and mtime are unchanged."""

    size: int
    mtime_ns: int
    verified_ms: int


@dataclass(frozen=True)
class VersionRow:
    """One version of a library path, as the photo details show it."""

    version: int
    sha256: str
    size: int
    created_ms: int
    capture_time_ms: int


AuditEntry = tuple[int, int, str, str, str, str, str]
"""(id, ts_ms, actor, action, target, result, detail) of one audit row."""


@dataclass(frozen=True)
class LocationRow:
    """A library path with every version it has had (oldest first)."""

    location_id: int
    agent_id: str
    watch_name: str
    rel_path: str
    head_version: int
    versions: tuple[VersionRow, ...]


class Catalog(CatalogWrites, MultipartLedger, Protocol):
    """Everything the server reads and writes in its catalog, whichever engine holds it:
    SqliteCatalog (the embedded default) or storage.pg_catalog.PgCatalog (catalog.url
    postgresql://, shared by several servers). Callers are typed against this, never an
    engine; storage.catalogs.open_catalog is the one place that names them."""

    def close(self) -> None: ...
    # photos
    def probe(self) -> None: ...
    def photo_count(self) -> tuple[int, int]: ...
    def all_versions(self) -> list[tuple[str, str, str, int, str, str]]: ...
    def photo_meta(self, sha256: str) -> tuple[int, ExifSummary]: ...
    # locations, versions and conflicts
    def heads_beneath(self, agent_id: str, watch_name: str, folder: str,
                      limit: int) -> list[HeadPhoto]: ...
    def heads_with_ids(self, agent_id: str, watch_name: str, folder: str,
                       limit: int) -> list[tuple[int, HeadPhoto]]: ...
    def writing(self) -> AbstractContextManager[CatalogWrites]: ...
    def make_durable(self) -> None: ...
    def open_conflicts(self, agent_id: str | None) -> list[ConflictRow]: ...
    def open_conflict_count(self) -> int: ...
    def close_conflict(self, conflict_id: int, resolution: str) -> None: ...
    def conflict_paths_of(self, sha256: str) -> list[str]: ...
    def location(self, location_id: int) -> LocationRow | None: ...
    # object verification and quarantine
    def verified_objects(self, shas: Sequence[str]) -> dict[str, VerifiedObject]: ...
    def record_quarantine(self, sha256: str, file: str, reason: str) -> None: ...
    def open_quarantine(self, sha256: str) -> list[str]: ...
    def open_quarantine_among(self, shas: Sequence[str]) -> set[str]: ...
    def close_quarantine(self, sha256: str) -> None: ...
    def held_by(self, agent_id: str, shas: Sequence[str]) -> set[str]: ...
    def wanted_from(self, agent_id: str, limit: int) -> list[str]: ...
    def library_paths_of(self, sha256: str) -> list[str]: ...
    def stored_objects(self, since_ms: int = 0) -> Iterator[tuple[str, int]]: ...
    def library_entries(self, since_ms: int = 0) -> Iterator[tuple[str, str]]: ...
    # agents
    def last_sync_ms(self) -> int: ...
    def agent_count(self) -> int: ...
    def agent_ids(self) -> list[str]: ...
    def register_agent(self, agent_id: str, hostname: str, version: str) -> None: ...
    def heartbeat(self, agent_id: str, state: str, queue_depth: int, bytes_pending: int,
                  missing_watches: tuple[str, ...],
                  pending_shoots: Sequence[PendingShoot] = ()) -> None: ...
    def set_paused(self, agent_id: str, paused: bool, *, by_admin: bool) -> bool | None: ...
    def get_agent(self, agent_id: str) -> AgentRow | None: ...
    # web tokens and audit
    def add_web_token(self, name: str, sha256: str) -> bool: ...
    def web_token_name(self, sha256: str) -> str | None: ...
    def open_web_session(self, digest: str, name: str, csrf: str, expires_ms: int,
                         keep: int) -> None: ...
    def web_session(self, digest: str) -> tuple[str, str] | None: ...
    def close_web_session(self, digest: str) -> None: ...
    def audit(self, actor: str, action: str, target: str, result: str,
              detail: str = "") -> None: ...
    def audit_rows(self, limit: int = 1000) -> list[tuple[int, str, str, str, str, str]]: ...
    def audit_page(self, after_id: int, newest: int) -> list[AuditEntry]: ...
    # the dashboard's summaries and library tree (catalog_browse)
    def agent_totals(self, agent_id: str) -> tuple[int, int]: ...
    def recounted_totals(self) -> dict[str, tuple[int, int]]: ...
    def library_agents(self) -> list[str]: ...
    def library_watches(self, agent_id: str) -> list[str]: ...
    def folder_exists(self, agent_id: str, watch_name: str, folder: str) -> bool: ...
    def child_folders(self, agent_id: str, watch_name: str, folder: str,
                      limit: int) -> list[str]: ...
    def folder_photos(self, agent_id: str, watch_name: str, folder: str,
                      limit: int) -> list[FolderPhoto]: ...
    # the library exported as a file tree, WebDAV (catalog_tree)
    def child_folders_after(self, agent_id: str, watch_name: str, folder: str, after: str,
                            limit: int) -> list[str]: ...
    def folder_files_page(self, agent_id: str, watch_name: str, folder: str,
                          after: tuple[str, int] | None, limit: int) -> list[TreeFile]: ...
    def tree_file(self, agent_id: str, watch_name: str, folder: str, name: str
                  ) -> TreeFile | None: ...
    # the safety view (catalog_shoots)
    def photos_by_capture(self, agent_id: str, before: tuple[int, int] | None,
                          page_photos: int) -> PhotoPage: ...
    def photos_without_capture(self, agent_id: str) -> list[CatalogPhoto]: ...
    def reported_shoots(self, agent_id: str) -> list[ReportedShoot]: ...


class SqliteCatalog(ShootTables, BrowseTables, TreeTables, MultipartTables, SessionTables,
                    AgentTables):
    """The embedded catalog: one SQLite file in WAL mode; every commit is durable on return."""

    VERSIONS_ADDED = "rowid"

    def __init__(self, path: Path) -> None:
        self._conn = open_database(path, "photonic.server.migrations")
        self._lock = threading.Lock()

    @classmethod
    def read_only(cls, path: Path) -> SqliteCatalog:
        """The catalog for a tool that reads while the server runs (`photonic audit tail`):
        no migration runs and every write raises."""
        catalog = cls.__new__(cls)
        catalog._conn = open_database(path, "photonic.server.migrations", read_only=True)
        catalog._lock = threading.Lock()
        return catalog

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._conn, self._lock, "the server catalog")

    @contextmanager
    def _sql_read(self) -> Iterator[Executor]:
        with self._lock:
            yield self._conn

    def _sql_tx(self) -> AbstractContextManager[Executor]:
        return self._tx()

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._conn.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())

    def _all_in(self, sql: str, values: Sequence[str], leading: tuple[object, ...] = ()
                ) -> list[tuple[Any, ...]]:
        """Rows of sql, whose `IN ({marks})` takes the distinct values, _IN_BATCH at a time
        (under SQLite's variable limit); `leading` binds the placeholders before it."""
        unique = list(dict.fromkeys(values))
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(unique), _IN_BATCH):
            batch = unique[start:start + _IN_BATCH]
            rows += self._all(sql.format(marks=", ".join("?" * len(batch))),
                              (*leading, *batch))
        return rows

    # photos ---------------------------------------------------------------------------------

    def probe(self) -> None:
        """Reads one photo row: the health check's proof that the catalog answers, in constant
        time (photo_count reads every row: at 10 million photos it held the catalog ~0.7 s,
        every 5 s, and a sync waiting on the catalog waited that long)."""
        self._one("SELECT sha256 FROM photos LIMIT 1")

    def photo_count(self) -> tuple[int, int]:
        row = self._one("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM photos")
        assert row is not None
        return int(row[0]), int(row[1])

    def all_versions(self) -> list[tuple[str, str, str, int, str, str]]:
        """(agent, watch, rel_path, version, sha256, library_path): for verification tools."""
        rows = self._all(
            "SELECT l.agent_id, l.watch_name, l.rel_path, v.version, v.sha256, v.library_path "
            "FROM versions v JOIN locations l ON l.id = v.location_id ORDER BY l.id, v.version"
        )
        return [(str(a), str(w), str(r), int(n), str(s), str(p))
                for a, w, r, n, s, p in rows]

    # locations and versions -----------------------------------------------------------------

    def get_head(self, agent_id: str, watch_name: str, rel_path: str) -> LocationHead | None:
        with self._lock:
            return read_head(self._conn, agent_id, watch_name, rel_path)

    def get_heads(self, agent_id: str, paths: Sequence[tuple[str, str]]
                  ) -> dict[tuple[str, str], LocationHead]:
        with self._lock:
            return read_heads(self._conn, agent_id, paths)

    def heads_beneath(self, agent_id: str, watch_name: str, folder: str, limit: int
                      ) -> list[HeadPhoto]:
        """heads_with_ids without the location ids."""
        return [head for _id, head in self.heads_with_ids(agent_id, watch_name, folder, limit)]

    def find_version(self, location_id: int, sha256: str, mtime_ns: int) -> tuple[int, str] | None:
        """(version, library_path) of a version with this content and mtime, if recorded."""
        with self._lock:
            return read_version(self._conn, location_id, sha256, mtime_ns)

    def photo_meta(self, sha256: str) -> tuple[int, ExifSummary]:
        row = self._one(
            "SELECT size, capture_time_ms, lens, has_gps, width, height FROM photos "
            "WHERE sha256 = ?", (sha256,),
        )
        if row is None:
            return 0, ExifSummary()
        return int(row[0]), ExifSummary(capture_time_unix_ms=int(row[1]), lens_model=str(row[2]),
                                        has_gps=bool(row[3]), width=int(row[4]),
                                        height=int(row[5]))

    def commit_version(self, v: NewVersion, *, durable: bool = True) -> int | None:
        """Records a version (and the head move it implies); returns the conflict id, if any.

        durable=False skips the fsync: the caller must call make_durable() (which covers every
        commit before it) before acknowledging the version to anyone."""
        with transaction(self._conn, self._lock, "the server catalog", durable=durable) as c:
            return write_version(c, v)

    @contextmanager
    def writing(self) -> Iterator[CatalogWrites]:
        """One write transaction for many photos' rows (see OpenTransaction), committed when
        the block ends and rolled back if it raises. Not durable: the caller makes it so
        (make_durable) before acknowledging any of it. Holds the catalog while open."""
        with transaction(self._conn, self._lock, "the server catalog", durable=False) as c:
            yield OpenTransaction(c)

    def make_durable(self) -> None:
        """Makes every commit so far durable with one fsync of the write-ahead log: a commit
        at synchronous=FULL syncs the log, and with it every earlier (NORMAL) commit's frames."""
        with self._tx() as c:
            c.execute("UPDATE sync_marks SET n = n + 1 WHERE id = 1")

    def park_conflict(self, agent_id: str, watch: str, rel: str, server_sha256: str,
                      incoming_sha256: str, size: int, exif: ExifSummary, mtime_ns: int) -> int:
        """Keeps an incoming version durable (content + an open conflict) without touching the
        library, for `manual` resolution; the same parked content twice is one conflict."""
        with self._tx() as c:
            return write_parked_conflict(c, agent_id, watch, rel, server_sha256,
                                         incoming_sha256, size, exif, mtime_ns)

    def open_conflicts(self, agent_id: str | None) -> list[ConflictRow]:
        sql = (
            "SELECT c.id, l.agent_id, l.watch_name, l.rel_path, c.server_sha256, "
            "c.incoming_sha256, c.incoming_mtime_ns, c.created_ms FROM conflicts c "
            "JOIN locations l ON l.id = c.location_id WHERE c.resolved_ms IS NULL"
        )
        args: tuple[object, ...] = ()
        if agent_id is not None:
            sql += " AND l.agent_id = ?"
            args = (agent_id,)
        rows = self._all(sql + " ORDER BY c.id", args)
        return [ConflictRow(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]),
                            str(r[5]), int(r[6]), int(r[7])) for r in rows]

    def open_conflict_count(self) -> int:
        row = self._one("SELECT COUNT(*) FROM conflicts WHERE resolved_ms IS NULL")
        return int(row[0]) if row else 0

    def close_conflict(self, conflict_id: int, resolution: str) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE conflicts SET resolved_ms = ?, resolution = ? WHERE id = ?",
                (now_ms(), resolution, conflict_id),
            )

    # object verification and quarantine -----------------------------------------------------

    def verified_objects(self, shas: Sequence[str]) -> dict[str, VerifiedObject]:
        """The last verification of each of these objects that has one."""
        return {str(sha): VerifiedObject(int(size), int(mtime_ns), int(verified_ms))
                for sha, size, mtime_ns, verified_ms in self._all_in(
                    "SELECT sha256, size, mtime_ns, verified_ms FROM object_checks "
                    "WHERE sha256 IN ({marks})", shas)}

    def record_verified(self, checks: Sequence[tuple[str, int, int]], *,
                        durable: bool = False) -> None:
        """(sha256, size, mtime_ns) of objects whose bytes were just found to hash to their
        name. Not durable by default: losing the row costs a re-hash, never a photo; the
        group sync's next barrier makes it durable anyway."""
        if not checks:
            return
        ts = now_ms()
        with transaction(self._conn, self._lock, "the server catalog", durable=durable) as c:
            upsert_checks(c, checks, ts)

    def record_quarantine(self, sha256: str, file: str, reason: str) -> None:
        """Durable: the object is gone from objects/ and the catalog must say where it went."""
        with self._tx() as c:
            c.execute("DELETE FROM object_checks WHERE sha256 = ?", (sha256,))
            c.execute("INSERT INTO quarantine (sha256, quarantined_ms, file, reason) "
                      "VALUES (?, ?, ?, ?)", (sha256, now_ms(), file, reason))

    def open_quarantine(self, sha256: str) -> list[str]:
        """Quarantined files (relative to the store root) of this content not yet repaired."""
        return [str(r[0]) for r in self._all(
            "SELECT file FROM quarantine WHERE sha256 = ? AND repaired_ms IS NULL ORDER BY id",
            (sha256,))]

    def open_quarantine_among(self, shas: Sequence[str]) -> set[str]:
        """Which of these contents have a quarantined copy not yet repaired (one query per
        500: a manifest asks once, not once per photo)."""
        return {str(r[0]) for r in self._all_in(
            "SELECT DISTINCT sha256 FROM quarantine WHERE repaired_ms IS NULL "
            "AND sha256 IN ({marks})", shas)}

    def close_quarantine(self, sha256: str) -> None:
        with transaction(self._conn, self._lock, "the server catalog", durable=False) as c:
            c.execute("UPDATE quarantine SET repaired_ms = ? WHERE sha256 = ? "
                      "AND repaired_ms IS NULL", (now_ms(), sha256))

    def held_by(self, agent_id: str, shas: Sequence[str]) -> set[str]:
        """Which of these contents this agent has at one of its own paths (it uploaded them,
        or proved it holds them): those need no proof of possession.

        CROSS JOIN keeps versions the outer table (SQLite's documented way to fix the join
        order): with a long IN list the planner otherwise walks every path of the agent,
        ~50 ms per manifest at 55,000 paths, growing with the library; this way it is one
        index search per hash (~1 ms per 500)."""
        return {str(r[0]) for r in self._all_in(
            "SELECT DISTINCT v.sha256 FROM versions v CROSS JOIN locations l "
            "ON l.id = v.location_id WHERE l.agent_id = ? AND v.sha256 IN ({marks})",
            shas, (agent_id,))}

    def wanted_from(self, agent_id: str, limit: int) -> list[str]:
        """Quarantined contents not yet repaired that this agent holds at one of its paths:
        what it is asked to send again."""
        return [str(r[0]) for r in self._all(
            "SELECT DISTINCT q.sha256 FROM quarantine q "
            "JOIN versions v ON v.sha256 = q.sha256 "
            "JOIN locations l ON l.id = v.location_id "
            "WHERE q.repaired_ms IS NULL AND l.agent_id = ? LIMIT ?", (agent_id, limit))]

    def library_paths_of(self, sha256: str) -> list[str]:
        """Every library path (relative to the store root) recorded for this content."""
        return [str(r[0]) for r in self._all(
            "SELECT library_path FROM versions WHERE sha256 = ? ORDER BY rowid", (sha256,))]

    # library browsing -----------------------------------------------------------------------

    def heads_with_ids(self, agent_id: str, watch_name: str, folder: str, limit: int
                       ) -> list[tuple[int, HeadPhoto]]:
        """The head version of every path in folder and below ('' = the whole watch), with
        its location id and what jobs need of each photo: size, pixels and capture time (for
        shoots)."""
        prefix = folder.strip("/")
        rows = self._all(
            "SELECT l.id, l.rel_path, v.sha256, p.size, p.width * p.height, p.capture_time_ms "
            "FROM locations l "
            "JOIN versions v ON v.location_id = l.id AND v.version = l.head_version "
            "JOIN photos p ON p.sha256 = v.sha256 "
            "WHERE l.agent_id = ? AND l.watch_name = ? "
            "AND (? = '' OR substr(l.rel_path, 1, ?) = ?) ORDER BY l.rel_path LIMIT ?",
            (agent_id, watch_name, prefix, len(prefix) + 1, prefix + "/", limit))
        return [(int(i), HeadPhoto(str(r), str(s), int(n), int(px or 0), int(t or 0)))
                for i, r, s, n, px, t in rows]

    # audit ----------------------------------------------------------------------------------

    def audit(self, actor: str, action: str, target: str, result: str, detail: str = "") -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO audit (ts_ms, actor, action, target, result, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (now_ms(), actor, action, target, result, detail),
            )

    def audit_rows(self, limit: int = 1000) -> list[tuple[int, str, str, str, str, str]]:
        rows = self._all(
            "SELECT ts_ms, actor, action, target, result, detail FROM audit ORDER BY id DESC "
            "LIMIT ?", (limit,),
        )
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]))
                for r in rows]

    def audit_page(self, after_id: int, newest: int) -> list[AuditEntry]:
        """Audit rows oldest first: with newest > 0 the newest that many, else every row after
        after_id (what `audit tail --follow` has not printed yet)."""
        cols = "SELECT id, ts_ms, actor, action, target, result, detail FROM audit"
        if newest > 0:
            rows = list(reversed(self._all(f"{cols} ORDER BY id DESC LIMIT ?", (newest,))))
        else:
            rows = self._all(f"{cols} WHERE id > ? ORDER BY id", (after_id,))
        return [(int(i), int(t), str(a), str(c), str(g), str(r), str(d))
                for i, t, a, c, g, r, d in rows]

    # media: what thumbnails, downloads and photo details read -------------------------------

    def location(self, location_id: int) -> LocationRow | None:
        """A library path by its id (the web layer's photo id) with all its versions."""
        with self._lock:
            row = self._conn.execute(
                "SELECT agent_id, watch_name, rel_path, head_version FROM locations "
                "WHERE id = ?", (location_id,)).fetchone()
            if row is None:
                return None
            versions = self._conn.execute(
                "SELECT v.version, v.sha256, p.size, v.created_ms, p.capture_time_ms "
                "FROM versions v JOIN photos p ON p.sha256 = v.sha256 "
                "WHERE v.location_id = ? ORDER BY v.version", (location_id,)).fetchall()
        return LocationRow(location_id, str(row[0]), str(row[1]), str(row[2]), int(row[3]),
                           tuple(VersionRow(int(n), str(s), int(z), int(c), int(t or 0))
                                 for n, s, z, c, t in versions))

    def conflict_paths_of(self, sha256: str) -> list[str]:
        """"<agent>/<watch>/<rel_path>" of every conflict, open or resolved, with this content
        on either side."""
        return [f"{a}/{w}/{r}" for a, w, r in self._all(
            "SELECT l.agent_id, l.watch_name, l.rel_path FROM conflicts c "
            "JOIN locations l ON l.id = c.location_id "
            "WHERE c.server_sha256 = ? OR c.incoming_sha256 = ? ORDER BY c.id", (sha256, sha256))]

