"""`photonic audit tail`: the server's audit trail read from its catalog (the embedded file
over a read-only connection, as the server may be running; or its PostgreSQL database), as
escaped key=value lines or JSON lines."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol, TextIO

from photonic.config import ServerConfig
from photonic.logfmt import logfmt_value
from photonic.server.catalog import AuditEntry
from photonic.server.storage.catalogs import open_catalog_reader

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


class AuditSource(Protocol):
    """The part of the Catalog the tail reads."""

    def audit_page(self, after_id: int, newest: int) -> list[AuditEntry]: ...
    def close(self) -> None: ...


class AuditReader:
    """Reads audit rows in the order they were written, remembering the last one seen."""

    def __init__(self, source: AuditSource) -> None:
        self.source = source
        self.last_id = 0

    @classmethod
    def open(cls, config: ServerConfig) -> AuditReader:
        return cls(open_catalog_reader(config.catalog))

    def last(self, count: int) -> list[AuditRow]:
        """The newest count rows, oldest first."""
        return self._take(self.source.audit_page(0, count)) if count > 0 else []

    def newer(self) -> list[AuditRow]:
        return self._take(self.source.audit_page(self.last_id, 0))

    def _take(self, rows: list[AuditEntry]) -> list[AuditRow]:
        out = [AuditRow(i, _iso(t), a, c, g, r, d) for i, t, a, c, g, r, d in rows]
        if out:
            self.last_id = max(self.last_id, out[-1].id)
        return out

    def close(self) -> None:
        self.source.close()


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
    reader = AuditReader.open(config)
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
