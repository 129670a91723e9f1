"""The agents table (with the agents' heartbeats and pending shoots), web tokens and the paged
walks of stored contents and library entries, on either engine (sql_access): statements both
SQLite and PostgreSQL take, written once for both catalogs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

from photonic.server.catalog_writes import now_ms
from photonic.server.sql_access import SqlAccess
from photonic.shoots import PendingShoot

PAGE_ROWS = 1000
"""Rows a paged walk reads at a time (a million rows never sit in memory at once)."""


@dataclass(frozen=True)
class AgentRow:
    agent_id: str
    hostname: str
    last_seen_ms: int
    last_sync_ms: int
    state: str
    queue_depth: int
    bytes_pending: int
    missing_watches: tuple[str, ...]
    paused: bool  # by the agent itself or by an admin: syncing is refused
    admin_paused: bool = False  # only an admin clears it


class AgentTables(SqlAccess):
    VERSIONS_ADDED: ClassVar[str]
    """The column that orders `versions` as its rows were added (`rowid`, `seq`)."""

    def stored_objects(self, since_ms: int = 0) -> Iterator[tuple[str, int]]:
        """(sha256, size) of every content the catalog holds, stored at or after since_ms,
        in pages of PAGE_ROWS."""
        last = ""
        while True:
            with self._sql_read() as c:
                page = c.execute(
                    "SELECT sha256, size FROM photos WHERE sha256 > ? AND stored_ms >= ? "
                    "ORDER BY sha256 LIMIT ?", (last, since_ms, PAGE_ROWS)).fetchall()
            if not page:
                return
            for sha, size in page:
                yield str(sha), int(size)
            last = str(page[-1][0])

    def library_entries(self, since_ms: int = 0) -> Iterator[tuple[str, str]]:
        """(library_path, sha256) of every version recorded at or after since_ms, in pages of
        PAGE_ROWS."""
        last = 0
        order = self.VERSIONS_ADDED
        while True:
            with self._sql_read() as c:
                page = c.execute(
                    f"SELECT {order}, library_path, sha256 FROM versions WHERE {order} > ? "
                    f"AND created_ms >= ? ORDER BY {order} LIMIT ?",
                    (last, since_ms, PAGE_ROWS)).fetchall()
            if not page:
                return
            for _added, library_path, sha in page:
                yield str(library_path), str(sha)
            last = int(page[-1][0])

    def last_sync_ms(self) -> int:
        """When any agent last had a version recorded (0: never)."""
        with self._sql_read() as c:
            row = c.execute("SELECT COALESCE(MAX(last_sync_ms), 0) FROM agents").fetchone()
        return int(row[0]) if row else 0

    def agent_count(self) -> int:
        with self._sql_read() as c:
            row = c.execute("SELECT COUNT(*) FROM agents").fetchone()
        return int(row[0]) if row else 0

    def agent_ids(self) -> list[str]:
        with self._sql_read() as c:
            return [str(r[0]) for r in c.execute(
                "SELECT agent_id FROM agents ORDER BY agent_id").fetchall()]

    def register_agent(self, agent_id: str, hostname: str, version: str) -> None:
        ts = now_ms()
        with self._sql_tx() as c:
            c.execute(
                "INSERT INTO agents (agent_id, hostname, version, first_seen_ms, last_seen_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET "
                "hostname = excluded.hostname, version = excluded.version, "
                "last_seen_ms = excluded.last_seen_ms",
                (agent_id, hostname, version, ts, ts))

    def heartbeat(self, agent_id: str, state: str, queue_depth: int, bytes_pending: int,
                  missing_watches: tuple[str, ...],
                  pending_shoots: Sequence[PendingShoot] = ()) -> None:
        """Records the agent's report; its pending shoots (at most MAX_PENDING_SHOOTS, one
        INSERT for all) replace its last ones."""
        ts = now_ms()
        with self._sql_tx() as c:
            c.execute(
                "UPDATE agents SET last_seen_ms = ?, state = ?, queue_depth = ?, "
                "bytes_pending = ?, missing_watches = ? WHERE agent_id = ?",
                (ts, state, queue_depth, bytes_pending, "\n".join(missing_watches), agent_id))
            c.execute("DELETE FROM agent_pending_shoots WHERE agent_id = ?", (agent_id,))
            if pending_shoots:
                c.execute(
                    "INSERT INTO agent_pending_shoots (agent_id, watch_name, folder, start_ms, "
                    "end_ms, files, bytes, camera, reported_ms) VALUES "
                    + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(pending_shoots)),
                    [value for shoot in pending_shoots for value in (
                        agent_id, shoot.watch_name, shoot.folder, shoot.start_ms, shoot.end_ms,
                        shoot.files, shoot.bytes, shoot.camera, ts)])

    def set_paused(self, agent_id: str, paused: bool, *, by_admin: bool) -> bool | None:
        """Sets the agent's own pause, or the admin's (which only an admin clears). Returns
        whether syncing is paused now (either flag), or None when no such agent is known."""
        column = "admin_paused" if by_admin else "paused"
        with self._sql_tx() as c:
            c.execute(f"UPDATE agents SET {column} = ? WHERE agent_id = ?",
                      (int(paused), agent_id))
            row = c.execute("SELECT paused, admin_paused FROM agents WHERE agent_id = ?",
                            (agent_id,)).fetchone()
        return None if row is None else bool(row[0] or row[1])

    def get_agent(self, agent_id: str) -> AgentRow | None:
        with self._sql_read() as c:
            row = c.execute(
                "SELECT agent_id, hostname, last_seen_ms, last_sync_ms, state, queue_depth, "
                "bytes_pending, missing_watches, paused <> 0 OR admin_paused <> 0, "
                "admin_paused FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
        if row is None:
            return None
        missing = tuple(m for m in str(row[7]).split("\n") if m)
        return AgentRow(str(row[0]), str(row[1]), int(row[2]), int(row[3]), str(row[4]),
                        int(row[5]), int(row[6]), missing, bool(row[8]), bool(row[9]))

    def add_web_token(self, name: str, sha256: str) -> bool:
        """Stores a token's digest under name; False when the name is taken."""
        with self._sql_tx() as c:
            return bool(c.execute(
                "INSERT INTO web_tokens (name, sha256, created_ms) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING", (name, sha256, now_ms())).rowcount == 1)

    def web_token_name(self, sha256: str) -> str | None:
        with self._sql_read() as c:
            row = c.execute("SELECT name FROM web_tokens WHERE sha256 = ?",
                            (sha256,)).fetchone()
        return None if row is None else str(row[0])
