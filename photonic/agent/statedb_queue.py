"""The upload queue: what still has to reach the server, recorded together with the index row
of each freshly hashed file, and released only on COMMITTED or HAVE."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from photonic.agent.signature import FileSignature
from photonic.agent.statedb_base import (
    CURRENT_GEN,
    EXIF_COLUMNS,
    EXIF_FIELDS,
    EXIF_NAMES,
    SIGNATURE_COLUMNS,
    StateConnection,
    exif_values,
    marks,
    take_new,
)
from photonic.models import ContentHash, ExifSummary

log = logging.getLogger("photonic.agent.statedb")

_QUEUE_COLUMNS = (
    "id, watch_name, rel_path, source_path, sha256, size, mtime_ns, "
    f"{EXIF_COLUMNS}, base_sha256, incomplete, attempts, enqueued_ms"
)


def _keep_if_same_sha(**fresh: str) -> str:
    return ", ".join(
        f"{col} = CASE WHEN queue.sha256 = excluded.sha256 THEN queue.{col} ELSE {new} END"
        for col, new in fresh.items()
    )


_FILES_UPDATE = take_new(*FileSignature._fields, "sha256", *EXIF_NAMES, "seen_gen", "updated_ms")
# Same content again keeps its id, attempts and state (idempotent); new content is a fresh
# entry under the same id, so an in-flight COMMITTED for the old sha cannot drop it.
_QUEUE_UPDATE = ", ".join([
    take_new("source_path", "sha256", "size", "mtime_ns", *EXIF_NAMES, "base_sha256"),
    take_new("incomplete"),
    _keep_if_same_sha(
        attempts="0", last_error="''", state="'pending'", enqueued_ms="excluded.enqueued_ms",
        permanent="0",
    ),
])


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


def _pending_from_row(row: sqlite3.Row) -> PendingFile:
    values = {f: row[c] for f, c in zip(EXIF_FIELDS, EXIF_NAMES, strict=True)}
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


def _record_one(c: sqlite3.Connection, watch_name: str, r: FileRecord, now: int) -> bool:
    """Upserts r's index row and queues it unless its path's synced content is the same."""
    row = c.execute(
        "SELECT synced_sha256 FROM files WHERE watch_name = ? AND rel_path = ?",
        (watch_name, r.rel_path),
    ).fetchone()
    synced = str(row[0]) if row else ""
    exif = exif_values(r.exif)
    c.execute(
        f"INSERT INTO files (watch_name, rel_path, {SIGNATURE_COLUMNS}, sha256, "
        f"{EXIF_COLUMNS}, missing, seen_gen, updated_ms) "
        f"VALUES ({marks(16)}, 0, {CURRENT_GEN}, ?) "
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
        f"{EXIF_COLUMNS}, base_sha256, incomplete, enqueued_ms) VALUES ({marks(17)}) "
        f"ON CONFLICT (watch_name, rel_path) DO UPDATE SET {_QUEUE_UPDATE}",
        (watch_name, r.rel_path, str(r.source_path), r.sha256, r.size, r.mtime_ns, *exif,
         synced, int(r.incomplete), now),
    )
    return True


class QueueTable(StateConnection):
    """The `queue` table, and the index writes that must commit with it."""

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
            return [_record_one(c, watch_name, r, now) for r in records]

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

    def queued_for_shoots(self, limit: int) -> list[PendingFile]:
        """Every queued file (pending or waiting after errors: none is on the server yet), up
        to limit, with only what shoot grouping reads filled in (no source path or hash):
        the heartbeat's report of what is still only here."""
        rows = self._read(
            "SELECT id, watch_name, rel_path, size, mtime_ns, capture_time_ms, camera_make, "
            "camera_model, enqueued_ms FROM queue ORDER BY id LIMIT ?", (limit,))
        return [PendingFile(
            id=r["id"], watch_name=r["watch_name"], relative_path=r["rel_path"],
            source_path=Path(), sha256=ContentHash(""), size=r["size"], mtime_ns=r["mtime_ns"],
            exif=ExifSummary(capture_time_unix_ms=r["capture_time_ms"],
                             camera_make=r["camera_make"], camera_model=r["camera_model"]),
            base_sha256="", incomplete=False, attempts=0, enqueued_unix_ms=r["enqueued_ms"],
        ) for r in rows]

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
