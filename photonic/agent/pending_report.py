"""The agent's heartbeat report of what is still only here: its queue grouped into shoots per
watch folder, with the uploader's rule (batcher.group_units and group_shoots: a gap in capture
time or a camera change starts a new shoot), so the server can show each shoot's safety."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Protocol

from photonic.agent.batcher import F, Unit, group_shoots, group_units
from photonic.agent.statedb_queue import PendingFile
from photonic.media.images import is_sidecar
from photonic.shoots import (
    MAX_CAMERA_CHARS,
    MAX_FOLDER_CHARS,
    MAX_PENDING_SHOOTS,
    MAX_WATCH_CHARS,
    PendingShoot,
)

MAX_REPORTED_FILES = 200_000
"""Queue rows read per report (oldest first): a bound on the heartbeat's cost when a card of
a million files waits; beyond it the report is partial."""


class QueueReader(Protocol):
    def queued_for_shoots(self, limit: int) -> list[PendingFile]: ...


def _photos_in(unit: Unit[F]) -> int:
    return sum(not is_sidecar(Path(f.relative_path)) for f in unit.files)


def _folder_of(relative_path: str) -> str:
    parent = str(PurePosixPath(relative_path).parent)
    return "" if parent == "." else parent


def pending_shoots(files: Sequence[F], *, shoot_gap_s: float,
                   limit: int = MAX_PENDING_SHOOTS) -> list[PendingShoot]:
    """The `limit` most recent shoots (by end time, newest first) of these queued files.

    Shoots are per folder (the server groups its own photos per folder too, and merges the
    two by folder and time). Units of sidecars alone are left out: without a photo they
    carry no capture time of their own, and the server does not count sidecars either."""
    by_folder: dict[tuple[str, str], list[F]] = {}
    for f in files:
        by_folder.setdefault((f.watch_name, _folder_of(f.relative_path)), []).append(f)
    report: list[PendingShoot] = []
    for (watch, folder), folder_files in by_folder.items():
        units = [u for u in group_units(folder_files) if _photos_in(u)]
        for shoot in group_shoots(units, shoot_gap_s=shoot_gap_s):
            report.append(PendingShoot(
                watch[:MAX_WATCH_CHARS], folder[:MAX_FOLDER_CHARS], shoot.start_unix_ms,
                shoot.end_unix_ms, sum(_photos_in(u) for u in shoot.units),
                sum(u.bytes for u in shoot.units), shoot.camera[:MAX_CAMERA_CHARS]))
    report.sort(key=lambda s: (s.end_ms, s.watch_name, s.folder), reverse=True)
    return report[:limit]


class PendingShootReport:
    """Reads the queue and groups it, once per heartbeat; an empty queue costs nothing."""

    def __init__(self, queue: QueueReader, *, shoot_gap_s: float,
                 max_files: int = MAX_REPORTED_FILES) -> None:
        self._queue = queue
        self._gap_s = shoot_gap_s
        self._max_files = max_files

    def shoots(self, queued_files: int) -> list[PendingShoot]:
        """Blocking (a database read): call from a thread. queued_files is the queue's size
        as the heartbeat already read it."""
        if queued_files <= 0:
            return []
        return pending_shoots(self._queue.queued_for_shoots(self._max_files),
                              shoot_gap_s=self._gap_s)
