"""The catalog on PostgreSQL 15 (catalog.url: postgresql://...), shared by several servers:
the whole Catalog of SqliteCatalog with the same rules (versions, conflicts, quarantine, web
tokens, audit, summaries) and the same durability. A commit returns only once durable
(PostgreSQL's default synchronous_commit); the batched writes of writing() and the other
`durable=False` commits turn synchronous_commit off for their transaction, and make_durable
is one synchronous commit, which flushes the WAL up to it and so every earlier commit too.

Its tables come from its own numbered migrations (pg_catalog_migrations/), run under the
advisory lock of pg_db.migrate, so servers starting at once run each file once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from photonic.models import ExifSummary
from photonic.server.catalog import (
    AuditEntry,
    ConflictRow,
    HeadPhoto,
    LocationRow,
    VerifiedObject,
    VersionRow,
)
from photonic.server.catalog_agents import AgentTables
from photonic.server.catalog_multipart import MultipartTables
from photonic.server.catalog_sessions import SessionTables
from photonic.server.catalog_tree import TreeTables
from photonic.server.catalog_writes import CatalogWrites, LocationHead, NewVersion, now_ms
from photonic.server.pg_db import migrate
from photonic.server.sql_access import Executor
from photonic.server.storage.pg_catalog_browse import PgBrowseTables
from photonic.server.storage.pg_catalog_writes import (
    PgOpenTransaction,
    read_head,
    read_heads,
    read_version,
    upsert_checks,
    write_parked_conflict,
    write_version,
)
from photonic.server.storage.pg_connection import PgSession, SharedSql
from photonic.server.storage.pg_scrub_reads import PgScrubReads

MIGRATIONS = "photonic.server.storage.pg_catalog_migrations"


class PgCatalog(PgBrowseTables, PgScrubReads, TreeTables, MultipartTables, SessionTables,
                AgentTables):
    """One connection per server (PgSession), used by one thread at a time. Also the scrub's
    catalog reads (scrub_tables.ScrubReads), which an embedded catalog serves from its file."""

    VERSIONS_ADDED = "seq"

    def __init__(self, url: str) -> None:
        self._db = PgSession(url)
        with self._db.connection() as c:
            migrate(c, MIGRATIONS)

    @property
    def url(self) -> str:
        return self._db.url

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _sql_read(self) -> Iterator[Executor]:
        with self._db.connection() as c:
            yield SharedSql(c)

    @contextmanager
    def _sql_tx(self) -> Iterator[Executor]:
        with self._db.tx() as c:
            yield SharedSql(c)

    # photos ---------------------------------------------------------------------------------

    def probe(self) -> None:
        self._db.one("SELECT sha256 FROM photos LIMIT 1")

    def photo_count(self) -> tuple[int, int]:
        row = self._db.one("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM photos")
        assert row is not None
        return int(row[0]), int(row[1])

    def all_versions(self) -> list[tuple[str, str, str, int, str, str]]:
        rows = self._db.all(
            "SELECT l.agent_id, l.watch_name, l.rel_path, v.version, v.sha256, v.library_path "
            "FROM versions v JOIN locations l ON l.id = v.location_id ORDER BY l.id, v.version")
        return [(str(a), str(w), str(r), int(n), str(s), str(p)) for a, w, r, n, s, p in rows]

    def photo_meta(self, sha256: str) -> tuple[int, ExifSummary]:
        row = self._db.one(
            "SELECT size, capture_time_ms, lens, has_gps, width, height FROM photos "
            "WHERE sha256 = %s", (sha256,))
        if row is None:
            return 0, ExifSummary()
        return int(row[0]), ExifSummary(capture_time_unix_ms=int(row[1]), lens_model=str(row[2]),
                                        has_gps=bool(row[3]), width=int(row[4]),
                                        height=int(row[5]))

    # locations and versions -----------------------------------------------------------------

    def get_head(self, agent_id: str, watch_name: str, rel_path: str) -> LocationHead | None:
        with self._db.connection() as c:
            return read_head(c, agent_id, watch_name, rel_path)

    def get_heads(self, agent_id: str, paths: Sequence[tuple[str, str]]
                  ) -> dict[tuple[str, str], LocationHead]:
        with self._db.connection() as c:
            return read_heads(c, agent_id, paths)

    def heads_beneath(self, agent_id: str, watch_name: str, folder: str, limit: int
                      ) -> list[HeadPhoto]:
        return [head for _id, head in self.heads_with_ids(agent_id, watch_name, folder, limit)]

    def heads_with_ids(self, agent_id: str, watch_name: str, folder: str, limit: int
                       ) -> list[tuple[int, HeadPhoto]]:
        prefix = folder.strip("/")
        rows = self._db.all(
            "SELECT l.id, l.rel_path, v.sha256, p.size, p.width * p.height, p.capture_time_ms "
            "FROM locations l "
            "JOIN versions v ON v.location_id = l.id AND v.version = l.head_version "
            "JOIN photos p ON p.sha256 = v.sha256 "
            "WHERE l.agent_id = %s AND l.watch_name = %s "
            "AND (%s::text = '' OR substr(l.rel_path, 1, %s) = %s) ORDER BY l.rel_path LIMIT %s",
            (agent_id, watch_name, prefix, len(prefix) + 1, prefix + "/", limit))
        return [(int(i), HeadPhoto(str(r), str(s), int(n), int(px or 0), int(t or 0)))
                for i, r, s, n, px, t in rows]

    def find_version(self, location_id: int, sha256: str, mtime_ns: int) -> tuple[int, str] | None:
        with self._db.connection() as c:
            return read_version(c, location_id, sha256, mtime_ns)

    def commit_version(self, v: NewVersion, *, durable: bool = True) -> int | None:
        with self._db.tx(durable=durable, pipelined=True) as c:
            return write_version(c, v)

    @contextmanager
    def writing(self) -> Iterator[CatalogWrites]:
        """One transaction for many photos' rows, committed when the block ends and rolled
        back if it raises; not durable until make_durable. Holds the catalog while open."""
        with self._db.tx(durable=False, pipelined=True) as c:
            writes = PgOpenTransaction(c)
            yield writes
            writes.finish()

    def make_durable(self) -> None:
        with self._db.tx() as c:
            c.execute("UPDATE sync_marks SET n = n + 1 WHERE id = 1")

    def park_conflict(self, agent_id: str, watch: str, rel: str, server_sha256: str,
                      incoming_sha256: str, size: int, exif: ExifSummary, mtime_ns: int) -> int:
        with self._db.tx() as c:
            return write_parked_conflict(c, agent_id, watch, rel, server_sha256,
                                         incoming_sha256, size, exif, mtime_ns)

    def open_conflicts(self, agent_id: str | None) -> list[ConflictRow]:
        query = (
            "SELECT c.id, l.agent_id, l.watch_name, l.rel_path, c.server_sha256, "
            "c.incoming_sha256, c.incoming_mtime_ns, c.created_ms FROM conflicts c "
            "JOIN locations l ON l.id = c.location_id WHERE c.resolved_ms IS NULL")
        args: tuple[object, ...] = ()
        if agent_id is not None:
            query += " AND l.agent_id = %s"
            args = (agent_id,)
        return [ConflictRow(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]),
                            str(r[5]), int(r[6]), int(r[7]))
                for r in self._db.all(query + " ORDER BY c.id", args)]

    def open_conflict_count(self) -> int:
        row = self._db.one("SELECT COUNT(*) FROM conflicts WHERE resolved_ms IS NULL")
        return int(row[0]) if row else 0

    def close_conflict(self, conflict_id: int, resolution: str) -> None:
        with self._db.tx() as c:
            c.execute("UPDATE conflicts SET resolved_ms = %s, resolution = %s WHERE id = %s",
                      (now_ms(), resolution, conflict_id))

    def conflict_paths_of(self, sha256: str) -> list[str]:
        return [f"{a}/{w}/{r}" for a, w, r in self._db.all(
            "SELECT l.agent_id, l.watch_name, l.rel_path FROM conflicts c "
            "JOIN locations l ON l.id = c.location_id "
            "WHERE c.server_sha256 = %s OR c.incoming_sha256 = %s ORDER BY c.id",
            (sha256, sha256))]

    def location(self, location_id: int) -> LocationRow | None:
        with self._db.connection() as c:
            row = c.execute(
                "SELECT agent_id, watch_name, rel_path, head_version FROM locations "
                "WHERE id = %s", (location_id,)).fetchone()
            if row is None:
                return None
            versions = c.execute(
                "SELECT v.version, v.sha256, p.size, v.created_ms, p.capture_time_ms "
                "FROM versions v JOIN photos p ON p.sha256 = v.sha256 "
                "WHERE v.location_id = %s ORDER BY v.version", (location_id,)).fetchall()
        return LocationRow(location_id, str(row[0]), str(row[1]), str(row[2]), int(row[3]),
                           tuple(VersionRow(int(n), str(s), int(z), int(c), int(t or 0))
                                 for n, s, z, c, t in versions))

    # object verification and quarantine -----------------------------------------------------

    def verified_objects(self, shas: Sequence[str]) -> dict[str, VerifiedObject]:
        return {str(sha): VerifiedObject(int(size), int(mtime_ns), int(verified_ms))
                for sha, size, mtime_ns, verified_ms in self._db.all(
                    "SELECT sha256, size, mtime_ns, verified_ms FROM object_checks "
                    "WHERE sha256 = ANY(%b)", (list(dict.fromkeys(shas)),))}

    def record_verified(self, checks: Sequence[tuple[str, int, int]], *,
                        durable: bool = False) -> None:
        if not checks:
            return
        ts = now_ms()
        with self._db.tx(durable=durable) as c:
            upsert_checks(c, checks, ts)

    def record_quarantine(self, sha256: str, file: str, reason: str) -> None:
        with self._db.tx() as c:
            c.execute("DELETE FROM object_checks WHERE sha256 = %s", (sha256,))
            c.execute("INSERT INTO quarantine (sha256, quarantined_ms, file, reason) "
                      "VALUES (%s, %s, %s, %s)", (sha256, now_ms(), file, reason))

    def open_quarantine(self, sha256: str) -> list[str]:
        return [str(r[0]) for r in self._db.all(
            "SELECT file FROM quarantine WHERE sha256 = %s AND repaired_ms IS NULL ORDER BY id",
            (sha256,))]

    def open_quarantine_among(self, shas: Sequence[str]) -> set[str]:
        return {str(r[0]) for r in self._db.all(
            "SELECT DISTINCT sha256 FROM quarantine WHERE repaired_ms IS NULL "
            "AND sha256 = ANY(%b)", (list(dict.fromkeys(shas)),))}

    def close_quarantine(self, sha256: str) -> None:
        with self._db.tx(durable=False) as c:
            c.execute("UPDATE quarantine SET repaired_ms = %s WHERE sha256 = %s "
                      "AND repaired_ms IS NULL", (now_ms(), sha256))

    def held_by(self, agent_id: str, shas: Sequence[str]) -> set[str]:
        """One index search per hash (versions_by_sha), then the path's agent."""
        return {str(r[0]) for r in self._db.all(
            "SELECT DISTINCT v.sha256 FROM versions v JOIN locations l "
            "ON l.id = v.location_id WHERE l.agent_id = %s AND v.sha256 = ANY(%b)",
            (agent_id, list(dict.fromkeys(shas))))}

    def wanted_from(self, agent_id: str, limit: int) -> list[str]:
        return [str(r[0]) for r in self._db.all(
            "SELECT DISTINCT q.sha256 FROM quarantine q "
            "JOIN versions v ON v.sha256 = q.sha256 "
            "JOIN locations l ON l.id = v.location_id "
            "WHERE q.repaired_ms IS NULL AND l.agent_id = %s LIMIT %s", (agent_id, limit))]

    def library_paths_of(self, sha256: str) -> list[str]:
        return [str(r[0]) for r in self._db.all(
            "SELECT library_path FROM versions WHERE sha256 = %s ORDER BY seq", (sha256,))]

    # audit ----------------------------------------------------------------------------------

    def audit(self, actor: str, action: str, target: str, result: str, detail: str = "") -> None:
        with self._db.tx() as c:
            c.execute(
                "INSERT INTO audit (ts_ms, actor, action, target, result, detail) "
                "VALUES (%s, %s, %s, %s, %s, %s)", (now_ms(), actor, action, target, result,
                                                    detail))

    def audit_rows(self, limit: int = 1000) -> list[tuple[int, str, str, str, str, str]]:
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]))
                for r in self._db.all(
                    "SELECT ts_ms, actor, action, target, result, detail FROM audit "
                    "ORDER BY id DESC LIMIT %s", (limit,))]

    def audit_page(self, after_id: int, newest: int) -> list[AuditEntry]:
        cols = "SELECT id, ts_ms, actor, action, target, result, detail FROM audit"
        if newest > 0:
            rows = list(reversed(self._db.all(f"{cols} ORDER BY id DESC LIMIT %s", (newest,))))
        else:
            rows = self._db.all(f"{cols} WHERE id > %s ORDER BY id", (after_id,))
        return [(int(i), int(t), str(a), str(c), str(g), str(r), str(d))
                for i, t, a, c, g, r, d in rows]
