"""Safety by shoot: for each recent shoot of each agent, how many photos are still only on the
agent, how many the server holds (verified), in how many copies, and how many were processed.
The application layer behind GET /api/v1/shoots: the catalog's committed photos grouped by
agent, folder and capture time, merged with what each agent last reported as still queued."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from photonic import errors
from photonic.media.images import PHOTO_KIND_BY_SUFFIX, PhotoKind
from photonic.server.catalog_shoots import CatalogPhoto, PhotoPage, ReportedShoot
from photonic.server.shoot_grouping import FolderKey, GroupedShoot, Piece, recent_shoots

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
MAX_AGENT_CHARS = 255
PAGE_PHOTOS = 2000
"""Photos read per catalog query while walking back in time."""


class ShootCatalog(Protocol):
    def photos_by_capture(self, agent_id: str, before: tuple[int, int] | None,
                          page_photos: int) -> PhotoPage: ...
    def photos_without_capture(self, agent_id: str) -> list[CatalogPhoto]: ...
    def reported_shoots(self, agent_id: str) -> list[ReportedShoot]: ...


class ProcessedInputs(Protocol):
    """The job queue's answer: which of these contents a completed job took as input."""

    def completed_inputs(self, shas: Sequence[str]) -> set[str]: ...


@dataclass(frozen=True)
class ShootSafety:
    agent_id: str
    folder: str
    """"<watch>/<folder within it>" (or "<watch>" at its top): the library folder is
    "<agent_id>/<folder>"."""
    start_ms: int
    end_ms: int
    camera: str
    total: int
    on_agent_only: int
    on_server_verified: int
    copies: int
    processed: int


CopyCounts = Callable[[Sequence[str]], Mapping[str, int]]
"""Copies of each content the server side holds: its own store plus each backup node that
confirmed it (replication.queue.ReplicationQueue.copies_of)."""


def _one_copy_each(shas: Sequence[str]) -> Mapping[str, int]:
    return dict.fromkeys(shas, 1)


def copies_of(shoot: GroupedShoot, copies: Mapping[str, int]) -> int:
    """The copies of the shoot's least-copied photo on the server side (the primary's store
    and each backup node that confirmed it): the shoot is as safe as that photo. 1 for a
    shoot with no photo on the server yet, as before replication existed."""
    counts = [copies.get(i.sha256, 1) for i in shoot.items if isinstance(i, CatalogPhoto)]
    return min(counts, default=1)


def _folder_of(rel_path: str) -> str:
    return rel_path.rpartition("/")[0]


def _is_sidecar(rel_path: str) -> bool:
    """media.images.is_sidecar without a Path per photo (thousands per request)."""
    name = rel_path.rpartition("/")[2]
    dot = name.rfind(".")
    return dot > 0 and PHOTO_KIND_BY_SUFFIX.get(name[dot:].lower()) is PhotoKind.SIDECAR


def _photo_piece(p: CatalogPhoto) -> Piece:
    return Piece((p.agent_id, p.watch_name, _folder_of(p.rel_path)), p.time_ms, p.time_ms,
                 p.camera, p)


def _reported_piece(r: ReportedShoot) -> Piece:
    s = r.shoot
    return Piece((r.agent_id, s.watch_name, s.folder), s.start_ms, s.end_ms, s.camera, r)


def _newest_first(catalog: ShootCatalog, agent_id: str, page_photos: int) -> Iterator[Piece]:
    """Committed photos (by capture time, a page at a time; those without one by mtime) and
    reported spans (by end), merged newest first. Sidecars are no photos of their own."""
    def with_capture() -> Iterator[Piece]:
        before: tuple[int, int] | None = None
        while True:
            page = catalog.photos_by_capture(agent_id, before, page_photos)
            yield from (_photo_piece(p) for p in page.photos)
            if page.cursor is None:
                return
            before = page.cursor

    def newest(pieces: list[Piece]) -> list[Piece]:
        return sorted(pieces, key=lambda p: p.end_ms, reverse=True)

    undated = newest([_photo_piece(p) for p in catalog.photos_without_capture(agent_id)])
    reported = newest([_reported_piece(r) for r in catalog.reported_shoots(agent_id)])
    merged = heapq.merge(with_capture(), undated, reported, key=lambda p: p.end_ms,
                         reverse=True)
    return (p for p in merged if not (isinstance(p.item, CatalogPhoto)
                                      and _is_sidecar(p.item.rel_path)))


def _library_folder(key: FolderKey) -> str:
    _agent, watch, folder = key
    return f"{watch}/{folder}" if folder else watch


def _safety_of(shoot: GroupedShoot, processed: set[str], copies: Mapping[str, int]
               ) -> ShootSafety:
    """on_agent_only: the reported queued photos, less those committed since the report (the
    agent reports again after it syncs; until then these would count twice)."""
    photos = [i for i in shoot.items if isinstance(i, CatalogPhoto)]
    reports = [i for i in shoot.items if isinstance(i, ReportedShoot)]
    queued = sum(r.shoot.files for r in reports)
    if reports:
        reported_ms = min(r.reported_ms for r in reports)
        queued = max(0, queued - sum(p.committed_ms > reported_ms for p in photos))
    return ShootSafety(
        agent_id=shoot.key[0], folder=_library_folder(shoot.key), start_ms=shoot.start_ms,
        end_ms=shoot.end_ms, camera=shoot.camera, total=len(photos) + queued,
        on_agent_only=queued, on_server_verified=len(photos), copies=copies_of(shoot, copies),
        processed=sum(p.sha256 in processed for p in photos))


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise errors.InvalidInput(f"limit is a number from 1 to {MAX_LIMIT}")
    return limit


class SafetyView:
    def __init__(self, catalog: ShootCatalog, jobs: ProcessedInputs, *,
                 shoot_gap_ms: int, page_photos: int = PAGE_PHOTOS,
                 copies: CopyCounts = _one_copy_each) -> None:
        self._catalog = catalog
        self._copies = copies
        self._jobs = jobs
        self._gap_ms = shoot_gap_ms
        self._page_photos = page_photos

    async def recent_shoots(self, agent_id: str = "", limit: int = DEFAULT_LIMIT
                            ) -> list[ShootSafety]:
        """The `limit` shoots that ended last (of every agent, or agent_id's), newest first.
        On the server, only committed versions count: a photo is committed once its bytes
        hashed to their SHA-256 and were made durable, so every one is verified."""
        check_limit(limit)
        if len(agent_id) > MAX_AGENT_CHARS:
            raise errors.InvalidInput(f"agent is at most {MAX_AGENT_CHARS} characters")
        return await asyncio.to_thread(self._recent, agent_id, limit)

    def _recent(self, agent_id: str, limit: int) -> list[ShootSafety]:
        shoots = recent_shoots(_newest_first(self._catalog, agent_id, self._page_photos),
                               self._gap_ms, limit)
        shas = [i.sha256 for s in shoots for i in s.items if isinstance(i, CatalogPhoto)]
        processed = self._jobs.completed_inputs(shas) if shas else set()
        copies = self._copies(shas) if shas else {}
        return [_safety_of(s, processed, copies) for s in shoots]
