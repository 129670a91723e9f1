"""The catalog's reads and writes for the safety view: photos newest capture first (a page at a
time, so the view stops reading once it has its shoots), photos without a capture time, and
each agent's last report of the shoots still only on it. A mixin of SqliteCatalog, as the
agent's state database is made of its tables."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

from photonic.shoots import PendingShoot

_IN_BATCH = 500


@dataclass(frozen=True)
class CatalogPhoto:
    """One library path's current content, as shoots group it."""

    agent_id: str
    watch_name: str
    rel_path: str
    sha256: str
    time_ms: int
    """EXIF capture time, else the file's mtime as the agent sent it."""
    camera: str
    committed_ms: int
    """When the catalog recorded this version (the server holds it, verified)."""


@dataclass(frozen=True)
class PhotoPage:
    photos: tuple[CatalogPhoto, ...]
    cursor: tuple[int, int] | None
    """Where the next page starts: (capture_time_ms, photo rowid) of this page's last photo;
    None when the catalog has no more photos with a capture time."""


@dataclass(frozen=True)
class ReportedShoot:
    agent_id: str
    shoot: PendingShoot
    reported_ms: int


class ShootTables:
    """Needs the SqliteCatalog's connection and lock."""

    _conn: sqlite3.Connection
    _lock: threading.Lock

    def _rows(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())

    def photos_by_capture(self, agent_id: str, before: tuple[int, int] | None,
                          page_photos: int) -> PhotoPage:
        """Up to page_photos contents with a capture time, newest first, strictly before
        `before` (None: from the newest), with every library path of agent_id ('' = any)
        whose current version they are. The photos_by_capture_time index serves the walk."""
        time_ms, rowid = before if before is not None else (1 << 62, 1 << 62)
        page = self._rows(
            "SELECT rowid, capture_time_ms, camera, sha256 FROM photos "
            "WHERE capture_time_ms > 0 AND (capture_time_ms, rowid) < (?, ?) "
            "ORDER BY capture_time_ms DESC, rowid DESC LIMIT ?",
            (time_ms, rowid, page_photos))
        if not page:
            return PhotoPage((), None)
        meta = {str(sha): (int(t), str(cam)) for _r, t, cam, sha in page}
        located: dict[str, list[tuple[str, str, str, int]]] = {}
        shas = list(meta)
        for start in range(0, len(shas), _IN_BATCH):
            batch = shas[start:start + _IN_BATCH]
            for sha, agent, watch, rel, created in self._rows(
                    "SELECT v.sha256, l.agent_id, l.watch_name, l.rel_path, v.created_ms "
                    "FROM versions v JOIN locations l ON l.id = v.location_id "
                    "AND l.head_version = v.version "
                    f"WHERE v.sha256 IN ({', '.join('?' * len(batch))}) "
                    "AND (? = '' OR l.agent_id = ?)", (*batch, agent_id, agent_id)):
                located.setdefault(str(sha), []).append(
                    (str(agent), str(watch), str(rel), int(created)))
        photos = [CatalogPhoto(a, w, r, sha, meta[sha][0], meta[sha][1], c)
                  for _r, _t, _cam, sha in page for a, w, r, c in located.get(str(sha), [])]
        last = page[-1]
        cursor = (int(last[1]), int(last[0])) if len(page) == page_photos else None
        return PhotoPage(tuple(photos), cursor)

    def photos_without_capture(self, agent_id: str) -> list[CatalogPhoto]:
        """Current contents without a capture time (no EXIF), dated by their file's mtime,
        as the agent dates them when it batches. Read whole: such photos are few beside
        camera photos (screenshots, exports, sidecars, which the caller leaves out)."""
        return [CatalogPhoto(str(a), str(w), str(r), str(sha), int(mtime_ns) // 1_000_000,
                             str(cam), int(created))
                for sha, cam, a, w, r, created, mtime_ns in self._rows(
                    "SELECT p.sha256, p.camera, l.agent_id, l.watch_name, l.rel_path, "
                    "v.created_ms, v.mtime_ns FROM photos p "
                    # CROSS JOIN keeps photos (by the capture time index) the outer loop.
                    "CROSS JOIN versions v ON v.sha256 = p.sha256 "
                    "JOIN locations l ON l.id = v.location_id AND l.head_version = v.version "
                    "WHERE p.capture_time_ms <= 0 AND (? = '' OR l.agent_id = ?)",
                    (agent_id, agent_id))]

    def reported_shoots(self, agent_id: str) -> list[ReportedShoot]:
        """Every agent's (or agent_id's) last report of shoots still only on it."""
        return [ReportedShoot(str(a), PendingShoot(str(w), str(f), int(s), int(e), int(n),
                                                   int(b), str(cam)), int(at))
                for a, w, f, s, e, n, b, cam, at in self._rows(
                    "SELECT agent_id, watch_name, folder, start_ms, end_ms, files, bytes, "
                    "camera, reported_ms FROM agent_pending_shoots "
                    "WHERE ? = '' OR agent_id = ?", (agent_id, agent_id))]
