"""The one SQLite connection the agent's state tables share, with its lock, its transaction
helper and the column lists more than one table uses; the tables' own methods live in the
statedb_* modules and meet in statedb.AgentStateDB."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path

from photonic.agent.signature import FileSignature
from photonic.models import ExifSummary
from photonic.sqlite_db import open_database, transaction

EXIF_COLUMNS = (
    "capture_time_ms, camera_make, camera_model, lens_model, has_gps, width, height, orientation"
)
EXIF_NAMES = [c.strip() for c in EXIF_COLUMNS.split(",")]
EXIF_FIELDS = ["capture_time_unix_ms", *EXIF_NAMES[1:]]  # ExifSummary's names
SIGNATURE_COLUMNS = ", ".join(FileSignature._fields)  # the columns bear the field names
# The watch's current scan generation; rows written now count as "seen by this scan".
CURRENT_GEN = "(SELECT COALESCE(MAX(scan_gen), 0) FROM watches WHERE name = ?)"


def marks(count: int) -> str:
    """`?, ?, ...`: count placeholders."""
    return ", ".join("?" * count)


def take_new(*columns: str) -> str:
    """An upsert's SET clause that takes each column from the row being inserted."""
    return ", ".join(f"{col} = excluded.{col}" for col in columns)


def exif_values(exif: ExifSummary) -> list[object]:
    return [int(v) if isinstance(v, bool) else v for v in (getattr(exif, f) for f in EXIF_FIELDS)]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class StateConnection:
    """One SQLite file (WAL); every public method built on it is thread-safe and durable on
    return. Holds the connection the index, queue and watch tables share, so that one
    transaction can span them (recording a file writes the index and the queue at once)."""

    def __init__(
        self,
        path: Path,
        *,
        read_only: bool = False,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._conn = open_database(path, "photonic.agent.migrations", read_only=read_only)
        self._conn.row_factory = sqlite3.Row

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _tx(self, *, durable: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._conn, self._lock, "the agent's queue database",
                           durable=durable)

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()
