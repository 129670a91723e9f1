"""The scrub's own reads and writes in the server catalog: its durable progress through a pass,
the objects in walking order, the quarantine left unrepaired, and the pages of held objects
that ListObjects answers. Its own connection to catalog.db (WAL: it never blocks the sync
path's writer for long), so the catalog's class stays what ingest needs.

The progress row always stays in this server's own catalog.db. The catalog reads (the walk's
objects, the unrepaired quarantine, ListObjects' pages) are answered from that file too, or,
when the catalog is elsewhere (catalog.url postgresql://), by that catalog's own ScrubReads:
storage.catalogs.open_scrub_tables chooses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from photonic.sqlite_db import LockedDatabase

LIBRARY_PREFIX = "library/"
"""Library paths are recorded relative to the store root; the wire names them without it."""
MAX_PAGE = 1000


@dataclass(frozen=True)
class ScrubProgress:
    pass_started_ms: int
    in_pass: bool
    cursor_sha256: str
    objects_checked: int
    bytes_checked: int
    damaged: int
    last_completed_ms: int


@dataclass(frozen=True)
class Unrepaired:
    """A content whose quarantined (or missing) object no repair has replaced yet."""

    sha256: str
    size: int
    reason: str
    quarantined_file: str  # relative to the store root; "" when nothing was left to keep
    library_paths: tuple[str, ...]


@dataclass(frozen=True)
class HeldObject:
    """One ListObjects entry: library paths relative to the library (`agent/watch/path`)."""

    sha256: str
    size: int
    library_paths: tuple[str, ...]


class ScrubReads(Protocol):
    """The scrub's and ListObjects' reads of the catalog."""

    def objects_after(self, cursor_sha256: str, limit: int) -> list[tuple[str, int]]: ...
    def unrepaired(self) -> list[Unrepaired]: ...
    def unrepaired_count(self) -> int: ...
    def held_page(self, after_sha256: str, limit: int,
                  library_prefix: str) -> list[HeldObject]: ...


class ScrubTables(LockedDatabase):
    """Blocking; called from worker threads. catalog_reads: the catalog that answers the
    catalog reads when it is not catalog_file's (None: catalog_file's own tables)."""

    def __init__(self, catalog_file: Path, catalog_reads: ScrubReads | None = None) -> None:
        super().__init__(catalog_file, "photonic.server.migrations", "the scrub's progress")
        self._reads = catalog_reads

    # progress -------------------------------------------------------------------------------

    def progress(self) -> ScrubProgress:
        row = self._all("SELECT pass_started_ms, in_pass, cursor_sha256, objects_checked, "
                        "bytes_checked, damaged, last_completed_ms FROM scrub_progress")[0]
        return ScrubProgress(int(row[0]), bool(row[1]), str(row[2]), int(row[3]), int(row[4]),
                             int(row[5]), int(row[6]))

    def start_pass(self, now_ms: int) -> None:
        self._write("UPDATE scrub_progress SET pass_started_ms = ?, in_pass = 1, "
                    "cursor_sha256 = '', objects_checked = 0, bytes_checked = 0, damaged = 0",
                    (now_ms,))

    def advance(self, cursor_sha256: str, objects: int, nbytes: int, damaged: int) -> None:
        """Adds what was checked since the last call and moves the cursor past it."""
        self._write("UPDATE scrub_progress SET cursor_sha256 = ?, objects_checked = "
                    "objects_checked + ?, bytes_checked = bytes_checked + ?, "
                    "damaged = damaged + ?", (cursor_sha256, objects, nbytes, damaged))

    def finish_pass(self, now_ms: int) -> None:
        self._write("UPDATE scrub_progress SET in_pass = 0, last_completed_ms = ?", (now_ms,))

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._tx() as c:
            c.execute(sql, args)

    # the walk -------------------------------------------------------------------------------

    def objects_after(self, cursor_sha256: str, limit: int) -> list[tuple[str, int]]:
        """(sha256, size) of the next contents in walking order."""
        if self._reads is not None:
            return self._reads.objects_after(cursor_sha256, limit)
        return [(str(s), int(n)) for s, n in self._all(
            "SELECT sha256, size FROM photos WHERE sha256 > ? ORDER BY sha256 LIMIT ?",
            (cursor_sha256, limit))]

    def size_of(self, sha256: str) -> int | None:
        rows = self._all("SELECT size FROM photos WHERE sha256 = ?", (sha256,))
        return int(rows[0][0]) if rows else None

    # quarantine -----------------------------------------------------------------------------

    def unrepaired(self) -> list[Unrepaired]:
        """Every content with an open quarantine record, oldest first."""
        if self._reads is not None:
            return self._reads.unrepaired()
        rows = self._all(
            "SELECT q.sha256, COALESCE(p.size, 0), q.reason, q.file FROM quarantine q "
            "LEFT JOIN photos p ON p.sha256 = q.sha256 WHERE q.repaired_ms IS NULL "
            "GROUP BY q.sha256 ORDER BY MIN(q.id)")
        return [Unrepaired(str(sha), int(size), str(reason), str(file),
                           tuple(self._library_paths(str(sha), "")))
                for sha, size, reason, file in rows]

    def unrepaired_count(self) -> int:
        if self._reads is not None:
            return self._reads.unrepaired_count()
        return int(self._all("SELECT COUNT(DISTINCT sha256) FROM quarantine "
                             "WHERE repaired_ms IS NULL")[0][0])

    # ListObjects ----------------------------------------------------------------------------

    def held_page(self, after_sha256: str, limit: int, library_prefix: str
                  ) -> list[HeldObject]:
        """Contents after after_sha256 in order, at most limit (capped at MAX_PAGE); with a
        prefix, only those with a library path under that folder, and only those paths."""
        if self._reads is not None:
            return self._reads.held_page(after_sha256, limit, library_prefix)
        limit = max(1, min(limit or MAX_PAGE, MAX_PAGE))
        if not library_prefix:
            rows = self._all("SELECT sha256, size FROM photos WHERE sha256 > ? "
                             "ORDER BY sha256 LIMIT ?", (after_sha256, limit))
        else:
            stored = LIBRARY_PREFIX + library_prefix.strip("/") + "/"
            rows = self._all(
                "SELECT p.sha256, p.size FROM photos p WHERE p.sha256 > ? AND EXISTS "
                "(SELECT 1 FROM versions v WHERE v.sha256 = p.sha256 AND "
                "substr(v.library_path, 1, ?) = ?) ORDER BY p.sha256 LIMIT ?",
                (after_sha256, len(stored), stored, limit))
        prefix = library_prefix.strip("/") + "/" if library_prefix else ""
        return [HeldObject(str(sha), int(size), tuple(self._library_paths(str(sha), prefix)))
                for sha, size in rows]

    def _library_paths(self, sha256: str, prefix: str) -> list[str]:
        """Library paths of a content, relative to the library, under prefix when given."""
        out: list[str] = []
        for (path,) in self._all("SELECT library_path FROM versions WHERE sha256 = ? "
                                 "ORDER BY rowid", (sha256,)):
            path = str(path)
            if not path.startswith(LIBRARY_PREFIX):
                continue
            rel = path[len(LIBRARY_PREFIX):]
            if rel.startswith(prefix):
                out.append(rel)
        return out
