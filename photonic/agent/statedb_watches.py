"""The watch folders' recorded states (ok, missing, frozen), for `photonic status`, the
heartbeat and the freeze rule."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from photonic.agent.statedb_base import StateConnection


class WatchStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    FROZEN = "frozen"


@dataclass(frozen=True)
class WatchState:
    name: str
    path: Path
    state: WatchStatus
    reason: str
    file_count: int
    updated_unix_ms: int


class WatchTable(StateConnection):
    """The `watches` table: one row per configured watch folder."""

    def set_watch_state(
        self,
        name: str,
        path: Path,
        state: str,
        reason: str = "",
        file_count: int | None = None,
    ) -> None:
        status = WatchStatus(state)
        with self._tx(durable=False) as c:
            c.execute(
                "INSERT INTO watches (name, path, state, reason, file_count, updated_ms) "
                "VALUES (?, ?, ?, ?, COALESCE(?, 0), ?) ON CONFLICT (name) DO UPDATE SET "
                "path = excluded.path, state = excluded.state, reason = excluded.reason, "
                "file_count = COALESCE(?, watches.file_count), updated_ms = excluded.updated_ms",
                (name, str(path), status, reason, file_count, self._clock_ms(), file_count),
            )

    def watch_states(self) -> list[WatchState]:
        rows = self._read(
            "SELECT name, path, state, reason, file_count, updated_ms FROM watches ORDER BY name"
        )
        return [
            WatchState(
                name=r["name"],
                path=Path(r["path"]),
                state=WatchStatus(r["state"]),
                reason=r["reason"],
                file_count=r["file_count"],
                updated_unix_ms=r["updated_ms"],
            )
            for r in rows
        ]
