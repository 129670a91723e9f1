"""PgCatalog's answers to the scrub's and ListObjects' catalog reads (scrub_tables.ScrubReads):
the same pages as ScrubTables reads from an embedded catalog, on PostgreSQL (`seq` for SQLite's
rowid; DISTINCT ON where SQLite picks a group's row by MIN)."""

from __future__ import annotations

from photonic.server.scrub_tables import LIBRARY_PREFIX, MAX_PAGE, HeldObject, Unrepaired
from photonic.server.storage.pg_connection import PgSession


class PgScrubReads:
    """Needs the PgCatalog's session."""

    _db: PgSession

    def objects_after(self, cursor_sha256: str, limit: int) -> list[tuple[str, int]]:
        return [(str(s), int(n)) for s, n in self._db.all(
            "SELECT sha256, size FROM photos WHERE sha256 > %s ORDER BY sha256 LIMIT %s",
            (cursor_sha256, limit))]

    def unrepaired(self) -> list[Unrepaired]:
        """Every content with an open quarantine record (its oldest), oldest first."""
        rows = self._db.all(
            "SELECT sha256, size, reason, file FROM ("
            "SELECT DISTINCT ON (q.sha256) q.id, q.sha256, COALESCE(p.size, 0) AS size, "
            "q.reason, q.file FROM quarantine q LEFT JOIN photos p ON p.sha256 = q.sha256 "
            "WHERE q.repaired_ms IS NULL ORDER BY q.sha256, q.id) oldest ORDER BY id")
        return [Unrepaired(str(sha), int(size), str(reason), str(file),
                           tuple(self._library_paths(str(sha), "")))
                for sha, size, reason, file in rows]

    def unrepaired_count(self) -> int:
        row = self._db.one("SELECT COUNT(DISTINCT sha256) FROM quarantine "
                           "WHERE repaired_ms IS NULL")
        return int(row[0]) if row else 0

    def held_page(self, after_sha256: str, limit: int, library_prefix: str
                  ) -> list[HeldObject]:
        limit = max(1, min(limit or MAX_PAGE, MAX_PAGE))
        if not library_prefix:
            rows = self._db.all("SELECT sha256, size FROM photos WHERE sha256 > %s "
                                "ORDER BY sha256 LIMIT %s", (after_sha256, limit))
        else:
            stored = LIBRARY_PREFIX + library_prefix.strip("/") + "/"
            rows = self._db.all(
                "SELECT p.sha256, p.size FROM photos p WHERE p.sha256 > %s AND EXISTS "
                "(SELECT 1 FROM versions v WHERE v.sha256 = p.sha256 AND "
                "substr(v.library_path, 1, %s) = %s) ORDER BY p.sha256 LIMIT %s",
                (after_sha256, len(stored), stored, limit))
        prefix = library_prefix.strip("/") + "/" if library_prefix else ""
        return [HeldObject(str(sha), int(size), tuple(self._library_paths(str(sha), prefix)))
                for sha, size in rows]

    def _library_paths(self, sha256: str, prefix: str) -> list[str]:
        out: list[str] = []
        for (path,) in self._db.all("SELECT library_path FROM versions WHERE sha256 = %s "
                                    "ORDER BY seq", (sha256,)):
            path = str(path)
            if path.startswith(LIBRARY_PREFIX) and path[len(LIBRARY_PREFIX):].startswith(prefix):
                out.append(path[len(LIBRARY_PREFIX):])
        return out
