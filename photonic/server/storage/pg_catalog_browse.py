"""PgCatalog's reads for the dashboard and the safety view: catalog_browse.BrowseTables and
catalog_shoots.ShootTables on PostgreSQL (`= ANY(list)` for SQLite's batched IN lists, `seq`
for its rowid, plain joins where SQLite needed CROSS JOIN to fix the join order), and the
heartbeat's replacement of an agent's pending shoots."""

from __future__ import annotations

from photonic.server.catalog_browse import (
    AGENT_TOTALS_SQL,
    CHILD_FOLDERS_SQL,
    FOLDER_PHOTOS_SQL,
    FOLDER_RECORDED_SQL,
    NEXT_AGENT_SQL,
    NEXT_WATCH_SQL,
    TOTALS_BY_AGENT_SQL,
    WATCH_HAS_PATHS_SQL,
    FolderPhoto,
    folder_photo,
)
from photonic.server.catalog_shoots import CatalogPhoto, PhotoPage, ReportedShoot
from photonic.server.storage.pg_catalog_writes import pg
from photonic.server.storage.pg_connection import PgSession
from photonic.shoots import PendingShoot


class PgBrowseTables:
    """Needs the PgCatalog's session."""

    _db: PgSession

    # the dashboard's summaries and library tree ---------------------------------------------

    def agent_totals(self, agent_id: str) -> tuple[int, int]:
        row = self._db.one(pg(AGENT_TOTALS_SQL), (agent_id,))
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def recounted_totals(self) -> dict[str, tuple[int, int]]:
        return {str(a): (int(n), int(b)) for a, n, b in self._db.all(TOTALS_BY_AGENT_SQL)}

    def library_agents(self) -> list[str]:
        """One index probe per agent (MIN over the unique index), not a read of every path."""
        return self._distinct_in_index(pg(NEXT_AGENT_SQL), ())

    def library_watches(self, agent_id: str) -> list[str]:
        return self._distinct_in_index(pg(NEXT_WATCH_SQL), (agent_id,))

    def _distinct_in_index(self, next_sql: str, leading: tuple[object, ...]) -> list[str]:
        found: list[str] = []
        last = ""
        with self._db.connection() as c:
            while True:
                row = c.execute(next_sql, (*leading, last)).fetchone()
                if row is None or row[0] is None:
                    return found
                last = str(row[0])
                found.append(last)

    def folder_exists(self, agent_id: str, watch_name: str, folder: str) -> bool:
        if not folder:
            return bool(self._db.all(pg(WATCH_HAS_PATHS_SQL), (agent_id, watch_name)))
        parent, _, name = folder.rpartition("/")
        return bool(self._db.all(pg(FOLDER_RECORDED_SQL), (agent_id, watch_name, parent, name)))

    def child_folders(self, agent_id: str, watch_name: str, folder: str, limit: int
                      ) -> list[str]:
        return [str(r[0]) for r in self._db.all(
            pg(CHILD_FOLDERS_SQL), (agent_id, watch_name, folder, limit))]

    def folder_photos(self, agent_id: str, watch_name: str, folder: str, limit: int
                      ) -> list[FolderPhoto]:
        return [folder_photo(row) for row in self._db.all(
            pg(FOLDER_PHOTOS_SQL), (agent_id, watch_name, folder, limit))]

    # the safety view --------------------------------------------------------------------------

    def photos_by_capture(self, agent_id: str, before: tuple[int, int] | None,
                          page_photos: int) -> PhotoPage:
        """ShootTables.photos_by_capture: photos newest capture first, with every head path
        (of agent_id, '' = any) they are the content of; (capture_time_ms, seq) pages."""
        time_ms, seq = before if before is not None else (1 << 62, 1 << 62)
        page = self._db.all(
            "SELECT seq, capture_time_ms, camera, sha256 FROM photos "
            "WHERE capture_time_ms > 0 AND (capture_time_ms, seq) < (%s, %s) "
            "ORDER BY capture_time_ms DESC, seq DESC LIMIT %s",
            (time_ms, seq, page_photos))
        if not page:
            return PhotoPage((), None)
        meta = {str(sha): (int(t), str(cam)) for _s, t, cam, sha in page}
        located: dict[str, list[tuple[str, str, str, int]]] = {}
        for sha, agent, watch, rel, created in self._db.all(
                "SELECT v.sha256, l.agent_id, l.watch_name, l.rel_path, v.created_ms "
                "FROM versions v JOIN locations l ON l.id = v.location_id "
                "AND l.head_version = v.version "
                "WHERE v.sha256 = ANY(%s) AND (%s::text = '' OR l.agent_id = %s)",
                (list(meta), agent_id, agent_id)):
            located.setdefault(str(sha), []).append(
                (str(agent), str(watch), str(rel), int(created)))
        photos = [CatalogPhoto(a, w, r, sha, meta[sha][0], meta[sha][1], c)
                  for _s, _t, _cam, sha in page for a, w, r, c in located.get(str(sha), [])]
        last = page[-1]
        cursor = (int(last[1]), int(last[0])) if len(page) == page_photos else None
        return PhotoPage(tuple(photos), cursor)

    def photos_without_capture(self, agent_id: str) -> list[CatalogPhoto]:
        return [CatalogPhoto(str(a), str(w), str(r), str(sha), int(mtime_ns) // 1_000_000,
                             str(cam), int(created))
                for sha, cam, a, w, r, created, mtime_ns in self._db.all(
                    "SELECT p.sha256, p.camera, l.agent_id, l.watch_name, l.rel_path, "
                    "v.created_ms, v.mtime_ns FROM photos p "
                    "JOIN versions v ON v.sha256 = p.sha256 "
                    "JOIN locations l ON l.id = v.location_id AND l.head_version = v.version "
                    "WHERE p.capture_time_ms <= 0 AND (%s::text = '' OR l.agent_id = %s)",
                    (agent_id, agent_id))]

    def reported_shoots(self, agent_id: str) -> list[ReportedShoot]:
        return [ReportedShoot(str(a), PendingShoot(str(w), str(f), int(s), int(e), int(n),
                                                   int(b), str(cam)), int(at))
                for a, w, f, s, e, n, b, cam, at in self._db.all(
                    "SELECT agent_id, watch_name, folder, start_ms, end_ms, files, bytes, "
                    "camera, reported_ms FROM agent_pending_shoots "
                    "WHERE %s::text = '' OR agent_id = %s", (agent_id, agent_id))]
