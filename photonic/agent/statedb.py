"""The agent's durable local state: the file index, the upload queue and the watch states."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from photonic.agent.signature import FileSignature
from photonic.models import ContentHash, ExifSummary
from photonic.sqlite_db import open_database, transaction

log = logging.getLogger(__name__)

_PAGE_ROWS = 1000
_EXIF_COLUMNS = (
    "capture_time_ms, camera_make, camera_model, lens_model, has_gps, width, height, orientation"
)
_QUEUE_COLUMNS = (
    "id, watch_name, rel_path, source_path, sha256, size, mtime_ns, "
    f"{_EXIF_COLUMNS}, base_sha256, incomplete, attempts, enqueued_ms"
)
_SIGNATURE_COLUMNS = ", ".join(FileSignature._fields)  # the columns bear the field names
_SIGNATURE_SET = ", ".join(f"{col} = ?" for col in FileSignature._fields)
_INDEX_COLUMNS = f"watch_name, rel_path, {_SIGNATURE_COLUMNS}, sha256, synced_sha256, missing"
_EXIF_NAMES = [c.strip() for c in _EXIF_COLUMNS.split(",")]
_EXIF_FIELDS = ["capture_time_unix_ms", *_EXIF_NAMES[1:]]  # ExifSummary's names


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _take_new(*columns: str) -> str:
    return ", ".join(f"{col} = excluded.{col}" for col in columns)


def _keep_if_same_sha(**fresh: str) -> str:
    return ", ".join(
        f"{col} = CASE WHEN queue.sha256 = excluded.sha256 THEN queue.{col} ELSE {new} END"
        for col, new in fresh.items()
    )


_FILES_UPDATE = _take_new(
    *FileSignature._fields, "sha256", *_EXIF_NAMES, "seen_gen", "updated_ms"
)
# Same content again keeps its id, attempts and state (idempotent); new content is a fresh
# entry under the same id, so an in-flight COMMITTED for the old sha cannot drop it.
_QUEUE_UPDATE = ", ".join([
    _take_new("source_path", "sha256", "size", "mtime_ns", *_EXIF_NAMES, "base_sha256"),
    _take_new("incomplete"),
    _keep_if_same_sha(
        attempts="0", last_error="''", state="'pending'", enqueued_ms="excluded.enqueued_ms",
        permanent="0",
    ),
])
# The watch's current scan generation; rows written now count as "seen by this scan".
_CURRENT_GEN = "(SELECT COALESCE(MAX(scan_gen), 0) FROM watches WHERE name = ?)"


class WatchStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    FROZEN = "frozen"


@dataclass(frozen=True)
class IndexEntry:
    """What the index knows about one file in a watch folder."""

    watch_name: str
    rel_path: str
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int  # -1 (UNKNOWN_NS) in rows from before ctime was recorded
    birth_ns: int
    sha256: ContentHash
    synced_sha256: str
    missing: bool

    @property
    def signature(self) -> FileSignature:
        return FileSignature(self.size, self.mtime_ns, self.inode, self.ctime_ns, self.birth_ns)


@dataclass(frozen=True)
class PendingFile:
    """One queued file that still has to reach the server."""

    id: int
    watch_name: str
    relative_path: str
    source_path: Path
    sha256: ContentHash
    size: int
    mtime_ns: int
    exif: ExifSummary
    base_sha256: str
    incomplete: bool
    attempts: int
    enqueued_unix_ms: int


@dataclass(frozen=True)
class FileRecord:
    """A freshly hashed file, as record_files takes it: its signature is the stat taken before
    hashing, which still held after it."""

    rel_path: str
    signature: FileSignature
    sha256: ContentHash
    exif: ExifSummary
    source_path: Path
    incomplete: bool = False

    @property
    def size(self) -> int:
        return self.signature.size

    @property
    def mtime_ns(self) -> int:
        return self.signature.mtime_ns


@dataclass(frozen=True)
class QueueStats:
    files: int
    bytes: int
    errored: int


@dataclass(frozen=True)
class WatchState:
    name: str
    path: Path
    state: WatchStatus
    reason: str
    file_count: int
    updated_unix_ms: int


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _exif_values(exif: ExifSummary) -> list[object]:
    return [int(v) if isinstance(v, bool) else v for v in (getattr(exif, f) for f in _EXIF_FIELDS)]


def _pending_from_row(row: sqlite3.Row) -> PendingFile:
    values = {f: row[c] for f, c in zip(_EXIF_FIELDS, _EXIF_NAMES, strict=True)}
    values["has_gps"] = bool(values["has_gps"])
    return PendingFile(
        id=row["id"],
        watch_name=row["watch_name"],
        relative_path=row["rel_path"],
        source_path=Path(row["source_path"]),
        sha256=ContentHash(row["sha256"]),
        size=row["size"],
        mtime_ns=row["mtime_ns"],
        exif=ExifSummary(**values),
        base_sha256=row["base_sha256"],
        incomplete=bool(row["incomplete"]),
        attempts=row["attempts"],
        enqueued_unix_ms=row["enqueued_ms"],
    )


def _entry_from_row(row: sqlite3.Row) -> IndexEntry:
    # Columns come in the dataclass's field order (_INDEX_COLUMNS).
    r = row
    return IndexEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], ContentHash(r[7]), r[8],
                      bool(r[9]))


class AgentStateDB:
    """One SQLite file (WAL); every public method is thread-safe and durable on return."""

    def __init__(
        self,
        path: Path,
        *,
        read_only: bool = False,
        clock_ms: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._conn = open_database(path, "photonic.agent.migrations", read_only=read_only)
        self._conn.row_factory = sqlite3.Row

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _tx(self, *, durable: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._conn, self._lock, "the agent's queue database",
                           durable=durable)

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    # -- index --------------------------------------------------------------------------------

    def get_entry(self, watch_name: str, rel_path: str) -> IndexEntry | None:
        rows = self._read(
            f"SELECT {_INDEX_COLUMNS} FROM files WHERE watch_name = ? AND rel_path = ?",
            (watch_name, rel_path),
        )
        return _entry_from_row(rows[0]) if rows else None

    def get_signatures(
        self, watch_name: str, rel_paths: Sequence[str]
    ) -> dict[str, FileSignature]:
        """Signatures of the given indexed paths: one query per 500, not per file."""
        return {rel: sig for rel, (sig, _missing) in
                self.get_index_states(watch_name, rel_paths).items()}

    def get_index_states(
        self, watch_name: str, rel_paths: Sequence[str]
    ) -> dict[str, tuple[FileSignature, bool]]:
        """get_signatures, with whether each row is marked missing."""
        found: dict[str, tuple[FileSignature, bool]] = {}
        for start in range(0, len(rel_paths), 500):
            chunk = rel_paths[start : start + 500]
            for row in self._read(
                f"SELECT rel_path, {_SIGNATURE_COLUMNS}, missing FROM files "
                f"WHERE watch_name = ? AND rel_path IN ({_marks(len(chunk))})",
                (watch_name, *chunk),
            ):
                found[row[0]] = (FileSignature(*row[1:-1]), bool(row[-1]))
        return found

    def record_file(
        self,
        watch_name: str,
        rel_path: str,
        *,
        signature: FileSignature,
        sha256: ContentHash,
        exif: ExifSummary,
        source_path: Path,
        incomplete: bool = False,
    ) -> bool:
        """Upserts the index row and queues the content unless the server already has it."""
        record = FileRecord(rel_path, signature, sha256, exif, source_path, incomplete)
        return self.record_files(watch_name, [record])[0]

    def record_files(self, watch_name: str, records: Sequence[FileRecord]) -> list[bool]:
        """record_file for many files in one durable transaction; True where queued."""
        now = self._clock_ms()
        with self._tx() as c:
            return [self._record_one(c, watch_name, r, now) for r in records]

    @staticmethod
    def _record_one(c: sqlite3.Connection, watch_name: str, r: FileRecord, now: int) -> bool:
        row = c.execute(
            "SELECT synced_sha256 FROM files WHERE watch_name = ? AND rel_path = ?",
            (watch_name, r.rel_path),
        ).fetchone()
        synced = str(row[0]) if row else ""
        exif = _exif_values(r.exif)
        c.execute(
            f"INSERT INTO files (watch_name, rel_path, {_SIGNATURE_COLUMNS}, sha256, "
            f"{_EXIF_COLUMNS}, missing, seen_gen, updated_ms) "
            f"VALUES ({_marks(16)}, 0, {_CURRENT_GEN}, ?) "
            f"ON CONFLICT (watch_name, rel_path) DO UPDATE SET {_FILES_UPDATE}, missing = 0",
            (watch_name, r.rel_path, *r.signature, r.sha256, *exif, watch_name, now),
        )
        if r.sha256 == synced:
            # Back to what the server holds: an older queued version is no longer wanted.
            c.execute(
                "DELETE FROM queue WHERE watch_name = ? AND rel_path = ?", (watch_name, r.rel_path)
            )
            return False
        c.execute(
            f"INSERT INTO queue (watch_name, rel_path, source_path, sha256, size, mtime_ns, "
            f"{_EXIF_COLUMNS}, base_sha256, incomplete, enqueued_ms) VALUES ({_marks(17)}) "
            f"ON CONFLICT (watch_name, rel_path) DO UPDATE SET {_QUEUE_UPDATE}",
            (watch_name, r.rel_path, str(r.source_path), r.sha256, r.size, r.mtime_ns, *exif,
             synced, int(r.incomplete), now),
        )
        return True

    def touch_unchanged(self, watch_name: str, rel_path: str, signature: FileSignature) -> None:
        self.touch_unchanged_many(watch_name, [(rel_path, signature)])

    def touch_unchanged_many(
        self, watch_name: str, rows: Iterable[tuple[str, FileSignature]]
    ) -> None:
        """Marks files (rel_path, signature) as present and seen by this scan. The signature
        written is the one the caller compared, never a fresher stat: a row must not claim a
        state whose bytes were never hashed."""
        now = self._clock_ms()
        params = [(*signature, watch_name, now, watch_name, rel_path)
                  for rel_path, signature in rows]
        if not params:
            return
        with self._tx(durable=False) as c:
            c.executemany(
                f"UPDATE files SET {_SIGNATURE_SET}, missing = 0, seen_gen = {_CURRENT_GEN}, "
                "updated_ms = ? "
                "WHERE watch_name = ? AND rel_path = ?",
                params,
            )

    def iter_index(self, watch_name: str) -> Iterator[IndexEntry]:
        """Streams the index in pages, so a million files never sit in memory at once."""
        last = ""
        while True:
            rows = self._read(
                f"SELECT {_INDEX_COLUMNS} FROM files WHERE watch_name = ? AND rel_path > ? "
                "ORDER BY rel_path LIMIT ?",
                (watch_name, last, _PAGE_ROWS),
            )
            for row in rows:
                yield _entry_from_row(row)
            if len(rows) < _PAGE_ROWS:
                return
            last = rows[-1]["rel_path"]

    def mark_missing(self, watch_name: str, rel_paths: Iterable[str]) -> None:
        now = self._clock_ms()
        params = [(now, watch_name, p) for p in rel_paths]
        with self._tx(durable=False) as c:
            c.executemany(
                "UPDATE files SET missing = 1, updated_ms = ? "
                "WHERE watch_name = ? AND rel_path = ?",
                params,
            )

    def indexed_count(self, watch_name: str) -> int:
        """Files the index believes are present locally (missing ones excluded)."""
        rows = self._read(
            "SELECT COUNT(*) FROM files WHERE watch_name = ? AND missing = 0", (watch_name,)
        )
        return int(rows[0][0])

    # -- reconcile scans ----------------------------------------------------------------------

    def begin_scan(self, watch_name: str, path: Path) -> int:
        """Starts a scan generation; files not seen by its end are the vanished ones."""
        with self._tx(durable=False) as c:
            c.execute(
                "INSERT INTO watches (name, path, scan_gen, updated_ms) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (name) DO UPDATE SET scan_gen = watches.scan_gen + 1, "
                "path = excluded.path",
                (watch_name, str(path), self._clock_ms()),
            )
            row = c.execute("SELECT scan_gen FROM watches WHERE name = ?", (watch_name,))
            return int(row.fetchone()[0])

    def unseen_paths(self, watch_name: str, scan_gen: int, seen: Container[str]) -> list[str]:
        """Present rows that neither this scan's walk (seen) nor a write during it (which
        stamps the generation) has met: the files that vanished. Rows are streamed, not
        fetched: after a 200,000-file scan that saw everything, none is kept."""
        with self._lock:
            cursor = self._conn.execute(
                "SELECT rel_path FROM files WHERE watch_name = ? AND missing = 0 "
                "AND seen_gen < ?", (watch_name, scan_gen))
            return [str(rel) for (rel,) in cursor if rel not in seen]

    def mark_unseen_missing(self, watch_name: str, scan_gen: int,
                            rel_paths: Iterable[str]) -> int:
        """Marks unseen_paths missing, except a row written since (a file the watcher
        recorded meanwhile carries the generation)."""
        now = self._clock_ms()
        with self._tx(durable=False) as c:
            cur = c.executemany(
                "UPDATE files SET missing = 1, updated_ms = ? "
                "WHERE watch_name = ? AND rel_path = ? AND missing = 0 AND seen_gen < ?",
                [(now, watch_name, rel, scan_gen) for rel in rel_paths],
            )
            return cur.rowcount

    # -- queue --------------------------------------------------------------------------------

    def pending(self, limit: int, *, exclude_ids: Collection[int] = ()) -> list[PendingFile]:
        # Over-fetch by the excluded count instead of binding a huge NOT IN list.
        rows = self._read(
            f"SELECT {_QUEUE_COLUMNS} FROM queue WHERE state = 'pending' ORDER BY id LIMIT ?",
            (limit + len(exclude_ids),),
        )
        excluded = set(exclude_ids)
        return [_pending_from_row(r) for r in rows if r["id"] not in excluded][:limit]

    def mark_synced(self, queue_id: int, sha256: ContentHash) -> None:
        self.mark_synced_many([(queue_id, sha256)])

    def mark_synced_many(self, acked: Sequence[tuple[int, ContentHash]]) -> None:
        """Releases acknowledged queue entries, all in one durable commit."""
        with self._tx() as c:
            for queue_id, sha256 in acked:
                row = c.execute(
                    "SELECT watch_name, rel_path FROM queue WHERE id = ?", (queue_id,)
                ).fetchone()
                if row is None:
                    continue
                c.execute("DELETE FROM queue WHERE id = ? AND sha256 = ?", (queue_id, sha256))
                # A newer version queued meanwhile now builds on what the server just committed.
                c.execute("UPDATE queue SET base_sha256 = ? WHERE id = ?", (sha256, queue_id))
                c.execute(
                    "UPDATE files SET synced_sha256 = ? WHERE watch_name = ? AND rel_path = ?",
                    (sha256, row["watch_name"], row["rel_path"]),
                )

    def mark_failed(self, queue_id: int, reason: str, *, max_attempts: int,
                    permanent: bool = False) -> None:
        """Counts a failed attempt; at max_attempts the file waits in state 'error'.
        permanent: the server refused it for good; it stays refused across restarts."""
        with self._tx() as c:
            c.execute(
                "UPDATE queue SET attempts = attempts + 1, last_error = ?, permanent = ?, "
                "state = CASE WHEN attempts + 1 >= ? THEN 'error' ELSE 'pending' END "
                "WHERE id = ?",
                (reason, int(permanent), max_attempts, queue_id),
            )

    def requeue_errors(self) -> int:
        """At start: files that ran out of attempts get another round; those the server
        refused for good do not (they wait for a change)."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE queue SET state = 'pending', attempts = 0 "
                "WHERE state = 'error' AND permanent = 0"
            )
            return cur.rowcount

    def drop_pending(self, queue_id: int, reason: str) -> None:
        """Forgets a queued file whose source vanished; nothing is sent to the server."""
        with self._tx() as c:
            row = c.execute(
                "SELECT watch_name, rel_path FROM queue WHERE id = ?", (queue_id,)
            ).fetchone()
            if row is None:
                return
            c.execute("DELETE FROM queue WHERE id = ?", (queue_id,))
            # Invalidate the signature so a file that reappears there is hashed and queued again.
            c.execute(
                "UPDATE files SET missing = 1, mtime_ns = -1, updated_ms = ? "
                "WHERE watch_name = ? AND rel_path = ?",
                (self._clock_ms(), row["watch_name"], row["rel_path"]),
            )
        log.info("dropped queued file", extra={"queue_id": queue_id, "reason": reason})

    def forget_synced(self, shas: Sequence[str]) -> list[tuple[str, str]]:
        """The server lost these contents: every present file that holds one of them, as
        synced, is marked not synced, so hashing it again queues it. Returns those files as
        (watch_name, rel_path). A file already marked (an earlier request) is not returned
        again, so a request repeated by every heartbeat hashes each file once."""
        if not shas:
            return []
        marks = ", ".join("?" * len(shas))
        with self._tx() as c:
            rows = c.execute(
                f"SELECT watch_name, rel_path FROM files WHERE sha256 IN ({marks}) "
                "AND synced_sha256 = sha256 AND missing = 0", tuple(shas)).fetchall()
            c.executemany(
                "UPDATE files SET synced_sha256 = '' WHERE watch_name = ? AND rel_path = ?",
                rows)
        return [(str(w), str(r)) for w, r in rows]

    def queued_source(self, watch_name: str, rel_path: str) -> Path | None:
        """The source_path of the queue row for this path, if the path is queued."""
        rows = self._read(
            "SELECT source_path FROM queue WHERE watch_name = ? AND rel_path = ?",
            (watch_name, rel_path),
        )
        return Path(rows[0][0]) if rows else None

    def source_in_use(self, source_path: Path) -> bool:
        """Whether any queued file still reads from source_path (a shared ingest copy)."""
        rows = self._read("SELECT 1 FROM queue WHERE source_path = ? LIMIT 1",
                          (str(source_path),))
        return bool(rows)

    def queue_stats(self) -> QueueStats:
        rows = self._read(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), "
            "COALESCE(SUM(state = 'error'), 0) FROM queue"
        )
        return QueueStats(files=int(rows[0][0]), bytes=int(rows[0][1]), errored=int(rows[0][2]))

    def failed_files(self, limit: int = 50) -> list[tuple[str, str, str]]:
        """(watch, path, reason) of files the agent stopped sending (the server refused them
        for good, or they failed every attempt); each is tried again once it changes."""
        rows = self._read("SELECT watch_name, rel_path, last_error FROM queue "
                          "WHERE state = 'error' ORDER BY id LIMIT ?", (limit,))
        return [(str(w), str(p), str(e)) for w, p, e in rows]

    def queued_bytes_under(self, directory: Path) -> int:
        """Bytes of queued files whose source lies under directory (the ingest buffer)."""
        prefix = str(directory).rstrip("/") + "/"
        rows = self._read(
            "SELECT COALESCE(SUM(size), 0) FROM queue WHERE substr(source_path, 1, ?) = ?",
            (len(prefix), prefix),
        )
        return int(rows[0][0])

    # -- watches ------------------------------------------------------------------------------

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
