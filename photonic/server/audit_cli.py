"""`photonic audit tail`: the server's audit trail read from its catalog over a read-only
connection (the server may be running), as escaped key=value lines or JSON lines."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from photonic.config import ServerConfig
from photonic.errors import NotFound
from photonic.logfmt import logfmt_value
from photonic.sqlite_db import open_database

POLL_INTERVAL_S = 0.5


@dataclass(frozen=True)
class AuditRow:
    """One audited call: who (the certificate's identity), what, on what, and how it ended."""

    id: int
    time: str
    actor: str
    action: str
    target: str
    result: str
    detail: str


class AuditReader:
    """Reads audit rows in the order they were written, remembering the last one seen."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.last_id = 0

    @classmethod
    def open(cls, catalog_path: Path) -> AuditReader:
        if not catalog_path.exists():
            raise NotFound(f"{catalog_path} does not exist: has the server run with this "
                           "storage_path?")
        return cls(open_database(catalog_path, "photonic.server.migrations", read_only=True))

    def last(self, count: int) -> list[AuditRow]:
        """The newest count rows, oldest first."""
        rows = self._conn.execute(
            "SELECT id, ts_ms, actor, action, target, result, detail FROM audit "
            "ORDER BY id DESC LIMIT ?", (count,)).fetchall()
        return self._take(list(reversed(rows)))

    def newer(self) -> list[AuditRow]:
        rows = self._conn.execute(
            "SELECT id, ts_ms, actor, action, target, result, detail FROM audit "
            "WHERE id > ? ORDER BY id", (self.last_id,)).fetchall()
        return self._take(rows)

    def _take(self, rows: list[tuple[object, ...]]) -> list[AuditRow]:
        out = [AuditRow(int(str(r[0])), _iso(int(str(r[1]))), *(str(v) for v in r[2:]))
               for r in rows]
        if out:
            self.last_id = max(self.last_id, out[-1].id)
        return out

    def close(self) -> None:
        self._conn.close()


def _iso(ts_ms: int) -> str:
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ms // 1000))
            + f".{ts_ms % 1000:03d}Z")


def format_row(row: AuditRow, *, as_json: bool) -> str:
    fields = asdict(row)
    del fields["id"]
    if as_json:
        return json.dumps(fields, ensure_ascii=True)
    return " ".join(f"{k}={logfmt_value(v)}" for k, v in fields.items())


def run_audit_tail(config: ServerConfig, *, count: int, follow: bool, as_json: bool,
                   out: TextIO | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> int:
    """Prints the last count rows; with follow, keeps printing new ones until interrupted."""
    stream = out or sys.stdout
    reader = AuditReader.open(config.storage_path / "catalog.db")
    try:
        _emit(reader.last(count), stream, as_json)
        while follow:
            sleep(POLL_INTERVAL_S)
            _emit(reader.newer(), stream, as_json)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    return 0


def _emit(rows: list[AuditRow], stream: TextIO, as_json: bool) -> None:
    for row in rows:
        stream.write(format_row(row, as_json=as_json) + "\n")
    stream.flush()
