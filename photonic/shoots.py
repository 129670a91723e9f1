"""What an agent reports of the shoots still only in its queue: the type both sides share
(the agent builds it, the heartbeat carries it, the server stores and shows it) and its
bounds, which the agent respects and the server enforces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_PENDING_SHOOTS = 50
"""Shoots per heartbeat: the most recent by end time."""
MAX_WATCH_CHARS = 255
MAX_FOLDER_CHARS = 1024
MAX_CAMERA_CHARS = 255


@dataclass(frozen=True)
class PendingShoot:
    """One shoot's photos still waiting in an agent's queue, in one folder of one watch."""

    watch_name: str
    folder: str
    """The folder within the watch, "" for its top level."""
    start_ms: int
    """Capture time (EXIF, else the file's mtime) of its first photo, Unix ms."""
    end_ms: int
    files: int
    """Photos; sidecars travel with their photo and are not counted."""
    bytes: int
    """Every queued byte of the shoot, sidecars included."""
    camera: str = ""


def pending_shoots_problem(shoots: Sequence[PendingShoot]) -> str:
    """Why a report is refused ("" when it is fine): the catalog stores it, so it is bounded
    in count and in every string."""
    if len(shoots) > MAX_PENDING_SHOOTS:
        return f"at most {MAX_PENDING_SHOOTS} pending shoots per heartbeat"
    for s in shoots:
        if (len(s.watch_name) > MAX_WATCH_CHARS or len(s.folder) > MAX_FOLDER_CHARS
                or len(s.camera) > MAX_CAMERA_CHARS):
            return (f"a pending shoot's watch name and camera are at most {MAX_WATCH_CHARS} "
                    f"characters, its folder at most {MAX_FOLDER_CHARS}")
        if s.files < 0 or s.bytes < 0 or s.end_ms < s.start_ms:
            return "a pending shoot ends before it starts or counts below zero"
    return ""
