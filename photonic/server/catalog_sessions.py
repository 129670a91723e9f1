"""The dashboard's login sessions in the catalog (migration 012; PostgreSQL: its 002), on
either engine (sql_access): every server sharing the catalog knows them, a restart keeps them.
Only the SHA-256 of the session cookie is kept."""

from __future__ import annotations

from photonic.server.catalog_writes import now_ms
from photonic.server.sql_access import SqlAccess


class SessionTables(SqlAccess):
    def open_web_session(self, digest: str, name: str, csrf: str, expires_ms: int,
                         keep: int) -> None:
        """Stores a login's session; drops the expired ones and, beyond keep, the oldest."""
        now = now_ms()
        with self._sql_tx() as c:
            c.execute("DELETE FROM web_sessions WHERE expires_ms < ?", (now,))
            c.execute("INSERT INTO web_sessions (digest, name, csrf, created_ms, expires_ms, seq) "
                      "SELECT ?, ?, ?, ?, ?, COALESCE(MAX(seq), 0) + 1 FROM web_sessions",
                      (digest, name, csrf, now, expires_ms))
            c.execute("DELETE FROM web_sessions WHERE digest NOT IN (SELECT digest FROM "
                      "web_sessions ORDER BY seq DESC LIMIT ?)", (keep,))

    def web_session(self, digest: str) -> tuple[str, str] | None:
        """(name, csrf token) of a live session whose token still exists; None otherwise."""
        with self._sql_read() as c:
            row = c.execute("SELECT s.name, s.csrf FROM web_sessions s JOIN web_tokens t "
                            "ON t.name = s.name WHERE s.digest = ? AND s.expires_ms >= ?",
                            (digest, now_ms())).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def close_web_session(self, digest: str) -> None:
        with self._sql_tx() as c:
            c.execute("DELETE FROM web_sessions WHERE digest = ?", (digest,))
