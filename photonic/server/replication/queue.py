"""The durable replication queue: the catalog's versions that a backup node has not confirmed.

There is no queue table to fill: what a node still lacks is every version of the catalog with
no row of that node in replica_versions, so a commit is queued by being committed, and a crash
anywhere loses nothing (an unconfirmed version is offered again; the node answers HAVE for
content it already holds durably). Confirmations are written in one durable transaction per
group, only after the node answered COMMITTED or HAVE (durable there before it answers).

It keeps its own connection to the catalog database (WAL: readers never wait on the ingest
writer), so replication reads none of SqliteCatalog's private state. That connection is made
here, not by sqlite_db.open_database, and only once the catalog is open (and migrated):
open_database opens and closes the database file itself (make_private), and closing any
descriptor of a file drops every POSIX lock this process holds on it, the catalog
connection's included; another process could then checkpoint and reset the WAL under it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photonic.models import ContentHash, ExifSummary
from photonic.server.replication.paths import LibraryName
from photonic.sqlite_db import LockedDatabase

_IN_BATCH = 500
_LIBRARY = "library/"


@dataclass(frozen=True)
class PendingVersion:
    """One catalog version a node has not confirmed, with what its manifest entry needs."""

    location_id: int
    version: int
    name: LibraryName
    sha256: ContentHash
    size: int
    created_ms: int
    mtime_ns: int
    incomplete: bool
    base_sha256: str
    """The content of the version before it at the same path ('' for the first): the node
    records this one as a new version, not as a conflict."""
    exif: ExifSummary


@dataclass(frozen=True)
class Backlog:
    """What one node still lacks: versions, distinct content bytes, the oldest commit time."""

    versions: int
    bytes_pending: int
    oldest_created_ms: int  # 0 when nothing is pending


_PENDING_SQL = """
SELECT v.location_id, v.version, l.agent_id, l.watch_name, l.rel_path, v.sha256, p.size,
       v.created_ms, v.mtime_ns, v.incomplete,
       COALESCE((SELECT b.sha256 FROM versions b WHERE b.location_id = v.location_id
                 AND b.version < v.version ORDER BY b.version DESC LIMIT 1), ''),
       p.capture_time_ms, p.camera, p.lens, p.has_gps, p.width, p.height
FROM versions v
JOIN locations l ON l.id = v.location_id
JOIN photos p ON p.sha256 = v.sha256
WHERE NOT EXISTS (SELECT 1 FROM replica_versions r WHERE r.node = ?
                  AND r.location_id = v.location_id AND r.version = v.version)
ORDER BY v.created_ms, v.location_id, v.version
LIMIT ?
"""


def _pending_of(row: tuple[Any, ...]) -> PendingVersion:
    (loc, version, agent, watch, rel, sha, size, created, mtime, incomplete, base,
     capture, camera, lens, gps, width, height) = row
    exif = ExifSummary(capture_time_unix_ms=int(capture), camera_model=str(camera),
                       lens_model=str(lens), has_gps=bool(gps), width=int(width),
                       height=int(height))
    return PendingVersion(int(loc), int(version), LibraryName(str(agent), str(watch), str(rel)),
                          ContentHash(str(sha)), int(size), int(created), int(mtime),
                          bool(incomplete), str(base), exif)


class ReplicationQueue(LockedDatabase):
    """Blocking: every method runs in a worker thread. A second connection to the catalog,
    opened (and migrated) the way the catalog opens its own."""

    def __init__(self, catalog_path: Path, nodes: Sequence[str]) -> None:
        super().__init__(catalog_path, "photonic.server.migrations", "the replication ledger")
        self._nodes = tuple(nodes)
        """The configured nodes: a node removed from the config counts no more copies."""

    def pending(self, node: str, limit: int, max_bytes: int,
                skip: frozenset[tuple[int, int]] = frozenset()) -> list[PendingVersion]:
        """The oldest versions node lacks, at most one per path (a path's next version is
        offered once the one before it is confirmed, so the node numbers them alike), up to
        limit entries and about max_bytes of content; skip: (location, version) pairs this
        run gave up on (refused for good by the node)."""
        rows = self._all(_PENDING_SQL, (node, limit * 4 + len(skip)))
        out: list[PendingVersion] = []
        seen_locations: set[int] = set()
        total = 0
        for row in rows:
            item = _pending_of(row)
            if (item.location_id, item.version) in skip or item.location_id in seen_locations:
                seen_locations.add(item.location_id)
                continue
            seen_locations.add(item.location_id)
            if out and total + item.size > max_bytes:
                break
            out.append(item)
            total += item.size
            if len(out) >= limit:
                break
        return out

    def confirm(self, node: str, items: Sequence[PendingVersion]) -> None:
        """Records, durably, that node holds these versions and their content."""
        if not items:
            return
        ts = int(time.time() * 1000)
        with self._tx() as c:
            c.executemany(
                "INSERT OR IGNORE INTO replica_versions (node, location_id, version, "
                "confirmed_ms) VALUES (?, ?, ?, ?)",
                [(node, i.location_id, i.version, ts) for i in items])
            c.executemany(
                "INSERT OR IGNORE INTO replica_confirmations (node, sha256, confirmed_ms) "
                "VALUES (?, ?, ?)", [(node, i.sha256, ts) for i in items])

    def backlog(self, node: str) -> Backlog:
        """Versions node lacks, the bytes of the distinct content among them that it does not
        hold yet, and when the oldest of them was committed."""
        rows = self._all(
            "SELECT v.sha256, p.size, v.created_ms FROM versions v "
            "JOIN photos p ON p.sha256 = v.sha256 "
            "WHERE NOT EXISTS (SELECT 1 FROM replica_versions r WHERE r.node = ? "
            "AND r.location_id = v.location_id AND r.version = v.version)", (node,))
        if not rows:
            return Backlog(0, 0, 0)
        held = self._confirmed_among(node, [str(r[0]) for r in rows])
        sizes = {str(sha): int(size) for sha, size, _ in rows if sha not in held}
        return Backlog(len(rows), sum(sizes.values()), min(int(r[2]) for r in rows))

    def _confirmed_among(self, node: str, shas: Sequence[str]) -> set[str]:
        unique = list(dict.fromkeys(shas))
        held: set[str] = set()
        for start in range(0, len(unique), _IN_BATCH):
            batch = unique[start:start + _IN_BATCH]
            marks = ", ".join("?" * len(batch))
            held.update(str(r[0]) for r in self._all(
                f"SELECT sha256 FROM replica_confirmations WHERE node = ? "
                f"AND sha256 IN ({marks})", (node, *batch)))
        return held

    def held_by(self, node: str, shas: Sequence[str]) -> set[str]:
        """Which of shas node confirmed holding (an encrypted node: a version of a content it
        holds needs nothing sent, its path travels in the sealed index)."""
        return self._confirmed_among(node, shas)

    def confirmed_count(self, node: str) -> int:
        return int(self._all("SELECT COUNT(*) FROM replica_confirmations WHERE node = ?",
                             (node,))[0][0])

    def confirmed_contents(self, node: str) -> list[str]:
        """Every content node confirmed holding (the whole sealed index of a node)."""
        return [str(r[0]) for r in self._all(
            "SELECT sha256 FROM replica_confirmations WHERE node = ? ORDER BY sha256", (node,))]

    def library_of(self, shas: Sequence[str]) -> dict[str, tuple[int, list[str]]]:
        """Size and library paths (relative to the library) of each content."""
        out: dict[str, tuple[int, list[str]]] = {}
        unique = list(dict.fromkeys(shas))
        for start in range(0, len(unique), _IN_BATCH):
            batch = unique[start:start + _IN_BATCH]
            marks = ", ".join("?" * len(batch))
            for sha, size in self._all(
                    f"SELECT sha256, size FROM photos WHERE sha256 IN ({marks})", tuple(batch)):
                out[str(sha)] = (int(size), [])
            for sha, path in self._all(
                    f"SELECT sha256, library_path FROM versions WHERE sha256 IN ({marks}) "
                    "ORDER BY rowid", tuple(batch)):
                text = str(path)
                if str(sha) in out and text.startswith(_LIBRARY):
                    out[str(sha)][1].append(text[len(_LIBRARY):])
        return out

    def safe_heads(self, agent_id: str, min_copies: int) -> int:
        """Current versions of agent_id's paths whose content has min_copies copies."""
        node_marks = ", ".join("?" * len(self._nodes)) or "NULL"
        rows = self._all(
            "SELECT COUNT(*) FROM locations l JOIN versions v ON v.location_id = l.id "
            "AND v.version = l.head_version WHERE l.agent_id = ? AND 1 + (SELECT COUNT(*) "
            f"FROM replica_confirmations r WHERE r.sha256 = v.sha256 AND r.node IN "
            f"({node_marks})) >= ?", (agent_id, *self._nodes, min_copies))
        return int(rows[0][0])

    def copies_of(self, shas: Sequence[str]) -> dict[str, int]:
        """Copies of each content: 1 (this server's store) plus each configured node that
        confirmed holding it."""
        copies = dict.fromkeys(shas, 1)
        if not self._nodes or not copies:
            return copies
        unique = list(copies)
        node_marks = ", ".join("?" * len(self._nodes))
        for start in range(0, len(unique), _IN_BATCH):
            batch = unique[start:start + _IN_BATCH]
            marks = ", ".join("?" * len(batch))
            for sha, count in self._all(
                    f"SELECT sha256, COUNT(*) FROM replica_confirmations "
                    f"WHERE node IN ({node_marks}) AND sha256 IN ({marks}) GROUP BY sha256",
                    (*self._nodes, *batch)):
                copies[str(sha)] = 1 + int(count)
        return copies

