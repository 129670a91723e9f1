"""The file index (one row per file seen in a watch folder: its signature, its hash, what the
server holds for its path) and the scan generations that find vanished files."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from photonic.agent.signature import FileSignature
from photonic.agent.statedb_base import CURRENT_GEN, SIGNATURE_COLUMNS, StateConnection, marks
from photonic.models import ContentHash

_PAGE_ROWS = 1000
_SIGNATURE_SET = ", ".join(f"{col} = ?" for col in FileSignature._fields)
INDEX_COLUMNS = f"watch_name, rel_path, {SIGNATURE_COLUMNS}, sha256, synced_sha256, missing"


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


def _entry_from_row(row: sqlite3.Row) -> IndexEntry:
    # Columns come in the dataclass's field order (INDEX_COLUMNS).
    r = row
    return IndexEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], ContentHash(r[7]), r[8],
                      bool(r[9]))


def _beneath(root: Path, rel_path: str) -> Path | None:
    """root / rel_path, or None for a relative path that could climb out of root."""
    rel = PurePosixPath(rel_path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        return None
    return root / rel


class IndexTable(StateConnection):
    """The `files` table and the scan generations in `watches.scan_gen`."""

    def get_entry(self, watch_name: str, rel_path: str) -> IndexEntry | None:
        rows = self._read(
            f"SELECT {INDEX_COLUMNS} FROM files WHERE watch_name = ? AND rel_path = ?",
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
                f"SELECT rel_path, {SIGNATURE_COLUMNS}, missing FROM files "
                f"WHERE watch_name = ? AND rel_path IN ({marks(len(chunk))})",
                (watch_name, *chunk),
            ):
                found[row[0]] = (FileSignature(*row[1:-1]), bool(row[-1]))
        return found

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
                f"UPDATE files SET {_SIGNATURE_SET}, missing = 0, seen_gen = {CURRENT_GEN}, "
                "updated_ms = ? "
                "WHERE watch_name = ? AND rel_path = ?",
                params,
            )

    def iter_index(self, watch_name: str) -> Iterator[IndexEntry]:
        """Streams the index in pages, so a million files never sit in memory at once."""
        last = ""
        while True:
            rows = self._read(
                f"SELECT {INDEX_COLUMNS} FROM files WHERE watch_name = ? AND rel_path > ? "
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

    def forget_synced(self, shas: Sequence[str]) -> list[tuple[str, str]]:
        """The server lost these contents: every present file that holds one of them, as
        synced, is marked not synced, so hashing it again queues it. Returns those files as
        (watch_name, rel_path). A file already marked (an earlier request) is not returned
        again, so a request repeated by every heartbeat hashes each file once."""
        if not shas:
            return []
        with self._tx() as c:
            rows = c.execute(
                f"SELECT watch_name, rel_path FROM files WHERE sha256 IN ({marks(len(shas))}) "
                "AND synced_sha256 = sha256 AND missing = 0", tuple(shas)).fetchall()
            c.executemany(
                "UPDATE files SET synced_sha256 = '' WHERE watch_name = ? AND rel_path = ?",
                rows)
        return [(str(w), str(r)) for w, r in rows]

    def local_copy_of(self, sha256: str, roots: Mapping[str, Path]) -> list[Path]:
        """Where this machine still holds the content sha256, for a job that needs its bytes
        without fetching them from the server: each present file whose content the server
        acknowledged (COMMITTED or HAVE) as sha256 and which still held it when last hashed,
        as roots[watch] / rel_path, then any ingest copy of that content still in the buffer.

        roots maps watch names to their folders (the config's, not the database's: a watch
        may have moved); a watch not in it is skipped. Only paths that exist now are
        returned, but one may have been rewritten since its last hash: the caller hashes
        what it reads before it trusts it."""
        indexed = self._read(
            "SELECT watch_name, rel_path FROM files WHERE synced_sha256 = ? AND sha256 = ? "
            "AND missing = 0 ORDER BY watch_name, rel_path", (sha256, sha256))
        queued = self._read(
            "SELECT watch_name, rel_path, source_path FROM queue WHERE sha256 = ? ORDER BY id",
            (sha256,))
        found: list[Path] = []
        for watch_name, rel_path in indexed:
            root = roots.get(watch_name)
            path = _beneath(root, rel_path) if root is not None else None
            if path is not None:
                found.append(path)
        for watch_name, rel_path, source in queued:
            root = roots.get(watch_name)
            own = _beneath(root, rel_path) if root is not None else None
            if own is not None and Path(source) != own:  # a copy in the ingest buffer
                found.append(Path(source))
        return [p for p in dict.fromkeys(found) if os.path.isfile(p)]

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
