"""The catalog's multipart ledger (storage/multipart.py): every statement of it, in SQL both
engines take (sql_access), so one mixin serves SqliteCatalog and PgCatalog."""

from __future__ import annotations

from collections.abc import Sequence

from photonic.server.catalog_writes import now_ms
from photonic.server.sql_access import SqlAccess
from photonic.server.storage.multipart import MultipartPart, MultipartState

_IN_BATCH = 500


class MultipartTables(SqlAccess):
    def multipart_of(self, sha256: str) -> MultipartState | None:
        with self._sql_read() as c:
            row = c.execute(
                "SELECT size, staging_key, upload_id, created_ms FROM multipart_uploads "
                "WHERE sha256 = ?", (sha256,)).fetchone()
            if row is None:
                return None
            parts = c.execute(
                "SELECT part_number, etag, size FROM multipart_parts WHERE sha256 = ? "
                "ORDER BY part_number", (sha256,)).fetchall()
        return MultipartState(sha256, int(row[0]), str(row[1]), str(row[2]), int(row[3]),
                              tuple(MultipartPart(int(n), str(e), int(s)) for n, e, s in parts))

    def multipart_offsets(self, shas: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        unique = list(dict.fromkeys(shas))
        for start in range(0, len(unique), _IN_BATCH):
            batch = unique[start:start + _IN_BATCH]
            with self._sql_read() as c:
                rows = c.execute(
                    "SELECT u.sha256, COALESCE(SUM(p.size), 0) FROM multipart_uploads u "
                    "LEFT JOIN multipart_parts p ON p.sha256 = u.sha256 "
                    f"WHERE u.sha256 IN ({', '.join('?' * len(batch))}) GROUP BY u.sha256",
                    batch).fetchall()
            out.update((str(sha), int(offset)) for sha, offset in rows)
        return out

    def begin_multipart(self, sha256: str, size: int, staging_key: str, upload_id: str
                        ) -> None:
        with self._sql_tx() as c:
            c.execute("DELETE FROM multipart_uploads WHERE sha256 = ?", (sha256,))
            c.execute("INSERT INTO multipart_uploads (sha256, size, staging_key, upload_id, "
                      "created_ms) VALUES (?, ?, ?, ?, ?)",
                      (sha256, size, staging_key, upload_id, now_ms()))

    def add_multipart_part(self, sha256: str, upload_id: str, part: MultipartPart) -> bool:
        with self._sql_tx() as c:
            if c.execute("SELECT 1 FROM multipart_uploads WHERE sha256 = ? AND upload_id = ?",
                         (sha256, upload_id)).fetchone() is None:
                return False
            c.execute("INSERT INTO multipart_parts (sha256, part_number, etag, size) "
                      "VALUES (?, ?, ?, ?) ON CONFLICT (sha256, part_number) DO UPDATE SET "
                      "etag = excluded.etag, size = excluded.size",
                      (sha256, part.number, part.etag, part.size))
        return True

    def end_multipart(self, sha256: str, upload_id: str) -> None:
        with self._sql_tx() as c:
            c.execute("DELETE FROM multipart_uploads WHERE sha256 = ? AND upload_id = ?",
                      (sha256, upload_id))

    def multipart_contents(self) -> list[str]:
        with self._sql_read() as c:
            return [str(r[0]) for r in
                    c.execute("SELECT sha256 FROM multipart_uploads ORDER BY sha256").fetchall()]

    def multipart_upload_ids(self) -> set[str]:
        with self._sql_read() as c:
            return {str(r[0]) for r in
                    c.execute("SELECT upload_id FROM multipart_uploads").fetchall()}
