"""Browsing the library by level (agents, their watches, folders and photos), from the catalog
only: what the web API's library listing shows, with library-relative paths and ids, never a
path on the server's disk."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from photonic import errors
from photonic.server.catalog import ConflictRow, SqliteCatalog

MAX_FOLDER_CHARS = 4096
MAX_SCANNED = 100_000
"""Paths read beneath one folder to find its direct children."""


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
    def __init__(self, catalog: SqliteCatalog) -> None:
        self._catalog = catalog

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
        heads = self._catalog.heads_with_ids(agent, watch, sub, MAX_SCANNED + 1)
        if not heads:
            raise errors.NotFound(f"no library folder {here!r}")
        skip = len(sub) + 1 if sub else 0
        folders: dict[str, None] = {}
        photos: list[LibraryPhoto] = []
        for loc_id, head in heads[:MAX_SCANNED]:
            rest = head.rel_path[skip:]
            if "/" in rest:
                folders[rest.split("/", 1)[0]] = None
                continue
            photos.append(LibraryPhoto(loc_id, rest, f"{agent}/{watch}/{head.rel_path}",
                                       head.sha256, head.size, head.pixels,
                                       head.capture_time_ms))
        return LibraryLevel(here, tuple(folders), tuple(photos), len(heads) > MAX_SCANNED)
