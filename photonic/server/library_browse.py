"""Browsing the library by level (agents, their watches, folders and photos), from the catalog
only: what the web API's library listing shows, with library-relative paths and ids, never a
path on the server's disk."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from photonic import errors
from photonic.server.catalog import Catalog, ConflictRow

MAX_FOLDER_CHARS = 4096
MAX_LISTED = 10_000
"""Photos, and subfolders, one level lists at most (more: `truncated`)."""


@dataclass(frozen=True)
class LibraryPhoto:
    id: int
    """The photo's location id: what thumbnail and download routes will take."""
    name: str
    library_path: str
    sha256: str
    size: int
    pixels: int
    capture_time_ms: int
    taken_ms: int
    """The capture time, else the file's mtime: the moment shoots are grouped by."""


@dataclass(frozen=True)
class LibraryLevel:
    folder: str
    folders: tuple[str, ...]
    photos: tuple[LibraryPhoto, ...]
    truncated: bool


def folder_parts(folder: str) -> list[str]:
    """The components of "<agent>/<watch>/<path>"; "..", ".", empty parts, backslashes and
    NUL are refused (nothing is ever looked up on disk, but such a name is never a library
    folder either)."""
    if len(folder) > MAX_FOLDER_CHARS:
        raise errors.InvalidInput(f"folder is longer than {MAX_FOLDER_CHARS} characters")
    stripped = folder.strip("/")
    if not stripped:
        return []
    parts = stripped.split("/")
    if any(p in ("", ".", "..") or "\0" in p or "\\" in p for p in parts):
        raise errors.InvalidInput(
            "folder must be <agent>/<watch>/<path> with no empty, '.' or '..' parts")
    return parts


class LibraryBrowser:
    """One level at a time: its direct subfolders and photos only, read through the
    catalog's folder tree (never every path beneath the level)."""

    def __init__(self, catalog: Catalog, max_listed: int = MAX_LISTED) -> None:
        self._catalog = catalog
        self._max = max_listed

    async def agent_ids(self) -> list[str]:
        """Every registered agent, for listings (each one's status comes from AgentsService)."""
        return await asyncio.to_thread(self._catalog.agent_ids)

    async def conflicts(self, agent_id: str | None = None) -> list[ConflictRow]:
        """Open conflicts, of one agent or of all."""
        return await asyncio.to_thread(self._catalog.open_conflicts, agent_id or None)

    async def level(self, folder: str) -> LibraryLevel:
        parts = folder_parts(folder)
        return await asyncio.to_thread(self._level, parts)

    def _level(self, parts: list[str]) -> LibraryLevel:
        here = "/".join(parts)
        if not parts:
            return LibraryLevel(here, tuple(self._catalog.library_agents()), (), False)
        if len(parts) == 1:
            watches = self._catalog.library_watches(parts[0])
            if not watches:
                raise errors.NotFound(f"no library folder {here!r}")
            return LibraryLevel(here, tuple(watches), (), False)
        agent, watch, sub = parts[0], parts[1], "/".join(parts[2:])
        if not self._catalog.folder_exists(agent, watch, sub):
            raise errors.NotFound(f"no library folder {here!r}")
        folders = self._catalog.child_folders(agent, watch, sub, self._max + 1)
        heads = self._catalog.folder_photos(agent, watch, sub, self._max + 1)
        photos = tuple(LibraryPhoto(h.location_id, h.rel_path.rpartition("/")[2],
                                    f"{agent}/{watch}/{h.rel_path}", h.sha256, h.size,
                                    h.pixels, h.capture_time_ms, h.taken_ms)
                       for h in heads[:self._max])
        # In the order of the paths beneath them, as listings have always shown them ("a-b"
        # before "a", because "a-b/..." sorts before "a/...").
        shown = sorted(folders[:self._max], key=lambda name: name + "/")
        return LibraryLevel(here, tuple(shown), photos,
                            len(heads) > self._max or len(folders) > self._max)
