"""Groups a folder's photos into shoots as the agent batches them (a gap in capture time longer
than the shoot gap, or a change of camera, starts a new shoot), over pieces of two kinds: one
committed photo at one instant, or a span an agent reported as still queued. Pure: no catalog,
no clock, so the rule is tested on its own.

Two ways to the same answer: `group_all` sorts everything (the reference), `recent_shoots`
reads pieces newest first and stops as soon as the most recent shoots are settled, which is
what keeps the safety view fast on a large catalog."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

FolderKey = tuple[str, str, str]
"""(agent_id, watch_name, folder within the watch)."""


@dataclass(frozen=True)
class Piece:
    """Something placed in time in one folder: a committed photo (start == end, one item) or
    a reported span of queued photos."""

    key: FolderKey
    start_ms: int
    end_ms: int
    camera: str
    item: object
    """What the caller counts: its photo, or its report."""


@dataclass(frozen=True)
class GroupedShoot:
    key: FolderKey
    start_ms: int
    end_ms: int
    camera: str
    items: tuple[object, ...]


def _sort_key(p: Piece) -> tuple[int, int]:
    return p.start_ms, p.end_ms


def split_folder(key: FolderKey, pieces: Sequence[Piece], gap_ms: int) -> list[GroupedShoot]:
    """One folder's pieces as shoots, oldest first: the agent's group_shoots, for spans too.
    A piece joins the shoot when it starts within gap_ms of the shoot's end so far and its
    camera (if known) is the shoot's (if known); an unknown camera never breaks a shoot."""
    shoots: list[GroupedShoot] = []
    current: list[Piece] = []
    camera, start, end = "", 0, 0
    for p in sorted(pieces, key=_sort_key):
        if current:
            changed = bool(p.camera and camera and p.camera != camera)
            if p.start_ms - end > gap_ms or changed:
                shoots.append(GroupedShoot(key, start, end, camera,
                                           tuple(c.item for c in current)))
                current = []
        if not current:
            camera, start, end = "", p.start_ms, p.end_ms
        current.append(p)
        camera = camera or p.camera
        end = max(end, p.end_ms)
    if current:
        shoots.append(GroupedShoot(key, start, end, camera, tuple(c.item for c in current)))
    return shoots


def _newest_first(shoots: Iterable[GroupedShoot], limit: int) -> list[GroupedShoot]:
    return sorted(shoots, key=lambda s: (-s.end_ms, s.key, -s.start_ms))[:limit]


def group_all(pieces: Iterable[Piece], gap_ms: int, limit: int) -> list[GroupedShoot]:
    """The reference: every piece read, every folder split, the `limit` latest-ending
    shoots, newest first."""
    by_folder: dict[FolderKey, list[Piece]] = {}
    for p in pieces:
        by_folder.setdefault(p.key, []).append(p)
    return _newest_first((s for key, ps in by_folder.items()
                          for s in split_folder(key, ps, gap_ms)), limit)


@dataclass
class _Session:
    """A folder's pieces linked by gaps no longer than the gap: a camera change may split it
    into several shoots, a longer gap never lies inside it."""

    pieces: list[Piece] = field(default_factory=list)
    start_ms: int = 0
    end_ms: int = 0


class _Collector:
    """Sessions still open (a piece read later may join them) and shoots already settled."""

    def __init__(self, gap_ms: int, limit: int) -> None:
        self._gap = gap_ms
        self._limit = limit
        self.open: dict[FolderKey, _Session] = {}
        self._closing: list[tuple[int, FolderKey, int]] = []  # (-(start - gap), key, start)
        self.settled: list[GroupedShoot] = []
        self._top_ends: list[int] = []  # min-heap of the `limit` latest settled ends

    def add(self, p: Piece) -> None:
        """p ends no later than every piece added before it."""
        self._close_before(p.end_ms)
        s = self.open.get(p.key)
        if s is None:
            s = self.open[p.key] = _Session([], p.start_ms, p.end_ms)
        s.pieces.append(p)
        if p.start_ms < s.start_ms or len(s.pieces) == 1:
            s.start_ms = min(s.start_ms, p.start_ms)
            heapq.heappush(self._closing, (-(s.start_ms - self._gap), p.key, s.start_ms))

    def _close_before(self, t: int) -> None:
        """Settles every session that nothing ending at t or earlier can reach."""
        while self._closing and -self._closing[0][0] > t:
            _threshold, key, start = heapq.heappop(self._closing)
            s = self.open.get(key)
            if s is not None and s.start_ms == start:
                self._settle(key)

    def _settle(self, key: FolderKey) -> None:
        s = self.open.pop(key)
        for shoot in split_folder(key, s.pieces, self._gap):
            self.settled.append(shoot)
            if len(self._top_ends) < self._limit:
                heapq.heappush(self._top_ends, shoot.end_ms)
            elif shoot.end_ms > self._top_ends[0]:
                heapq.heapreplace(self._top_ends, shoot.end_ms)

    def done(self, t: int) -> bool:
        """True when no shoot not yet settled can end later than the `limit` latest settled
        ones: every open session ends no later than its newest piece, every unread piece no
        later than t."""
        if len(self._top_ends) < self._limit:
            return False
        bound = max([t, *(s.end_ms for s in self.open.values())])
        return self._top_ends[0] > bound

    def finish(self) -> list[GroupedShoot]:
        for key in list(self.open):
            self._settle(key)
        return _newest_first(self.settled, self._limit)


def recent_shoots(newest_first: Iterable[Piece], gap_ms: int, limit: int
                  ) -> list[GroupedShoot]:
    """What group_all answers, from pieces ordered by end time, newest first, read only as
    far as needed. A session ends once a piece ends more than gap_ms before its start; its
    shoots settle then; reading stops once `limit` settled shoots end after everything
    still open or unread."""
    if limit <= 0:
        return []
    collector = _Collector(gap_ms, limit)
    for p in newest_first:
        opened = p.key not in collector.open
        settled = len(collector.settled)
        collector.add(p)
        if (opened or len(collector.settled) != settled) and collector.done(p.end_ms):
            break
    return collector.finish()
