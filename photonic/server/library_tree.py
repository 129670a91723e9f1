"""The library as a read-only tree of folders and files for file clients (the WebDAV export):
`<agent>/<watch>/<path…>` resolved and listed from the catalog alone, never from a folder on
disk, so it stays the same when objects leave the local disk. A folder is listed in pages
(a million photos are never in memory at once) and a file's bytes are opened through the
media layer's downloads, the one place that knows where objects are."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from photonic import errors
from photonic.server.catalog_tree import TreeFile
from photonic.server.media.downloads import Download

TREE_PAGE = 1000
"""Folders or files read from the catalog per query while a folder is listed."""
MAX_DEPTH = 160
"""Parts a tree path may have: agent, watch and paths.MAX_DEPTH folders, with room."""


class TreeCatalog(Protocol):
    """What the tree reads from the catalog (BrowseTables and TreeTables)."""

    def library_agents(self) -> list[str]: ...
    def library_watches(self, agent_id: str) -> list[str]: ...
    def folder_exists(self, agent_id: str, watch_name: str, folder: str) -> bool: ...
    def child_folders_after(self, agent_id: str, watch_name: str, folder: str, after: str,
                            limit: int) -> list[str]: ...
    def folder_files_page(self, agent_id: str, watch_name: str, folder: str,
                          after: tuple[str, int] | None, limit: int) -> list[TreeFile]: ...
    def tree_file(self, agent_id: str, watch_name: str, folder: str, name: str
                  ) -> TreeFile | None: ...


ContentOpener = Callable[[str], Awaitable[Download]]
"""Opens a stored content by SHA-256 for reading (MediaService.download)."""


@dataclass(frozen=True)
class TreeEntry:
    """A folder (file is None) or a file of the tree, at parts."""

    parts: tuple[str, ...]
    file: TreeFile | None = None

    @property
    def is_folder(self) -> bool:
        return self.file is None

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else ""


def checked_parts(parts: tuple[str, ...]) -> tuple[str, ...]:
    """parts when each one is a plain name: no empty, '.', '..', separator or NUL; checked
    here too, whatever the transport did, because they are joined into catalog paths."""
    if len(parts) > MAX_DEPTH:
        raise errors.InvalidInput(f"a library path has at most {MAX_DEPTH} parts")
    for part in parts:
        if part in ("", ".", "..") or any(c in part for c in "/\\\0"):
            raise errors.InvalidInput(
                "a library path is <agent>/<watch>/<path> with no empty, '.' or '..' part, "
                "separator or NUL in a name")
    return parts


class LibraryTree:
    """resolve() finds one entry, children() lists a folder page by page, open() reads a file."""

    def __init__(self, catalog: TreeCatalog, opener: ContentOpener,
                 page_size: int = TREE_PAGE) -> None:
        self._catalog = catalog
        self._opener = opener
        self._page = page_size

    async def resolve(self, parts: tuple[str, ...]) -> TreeEntry:
        """The entry at parts; NotFound when the library holds nothing there."""
        found = await asyncio.to_thread(self._resolve, checked_parts(parts))
        if found is None:
            raise errors.NotFound("the library holds nothing at that path")
        return found

    def _resolve(self, parts: tuple[str, ...]) -> TreeEntry | None:
        c = self._catalog
        if not parts:
            return TreeEntry(())
        if len(parts) == 1:
            return TreeEntry(parts) if c.library_watches(parts[0]) else None
        agent, watch, sub = parts[0], parts[1], "/".join(parts[2:])
        if c.folder_exists(agent, watch, sub):
            return TreeEntry(parts)
        if len(parts) == 2:
            return None
        folder = "/".join(parts[2:-1])
        found = c.tree_file(agent, watch, folder, parts[-1])
        return TreeEntry(parts, found) if found is not None else None

    async def children(self, folder: TreeEntry) -> AsyncIterator[list[TreeEntry]]:
        """The entries directly in folder, a page at a time: subfolders, then files."""
        parts = folder.parts
        if not parts:
            agents = await asyncio.to_thread(self._catalog.library_agents)
            yield [TreeEntry((a,)) for a in agents]
            return
        if len(parts) == 1:
            watches = await asyncio.to_thread(self._catalog.library_watches, parts[0])
            yield [TreeEntry((*parts, w)) for w in watches]
            return
        async for page in self._subfolders(parts):
            yield page
        async for page in self._files(parts):
            yield page

    async def _subfolders(self, parts: tuple[str, ...]) -> AsyncIterator[list[TreeEntry]]:
        agent, watch, sub = parts[0], parts[1], "/".join(parts[2:])
        after = ""
        while True:
            names = await asyncio.to_thread(self._catalog.child_folders_after, agent, watch,
                                            sub, after, self._page)
            if names:
                yield [TreeEntry((*parts, n)) for n in names]
            if len(names) < self._page:
                return
            after = names[-1]

    async def _files(self, parts: tuple[str, ...]) -> AsyncIterator[list[TreeEntry]]:
        agent, watch, sub = parts[0], parts[1], "/".join(parts[2:])
        after: tuple[str, int] | None = None
        while True:
            rows = await asyncio.to_thread(self._catalog.folder_files_page, agent, watch,
                                           sub, after, self._page)
            if rows:
                yield [TreeEntry((*parts, row.name), row) for row in rows]
            if len(rows) < self._page:
                return
            after = (rows[-1].rel_path, rows[-1].version)

    async def open(self, entry: TreeEntry) -> Download:
        """The file's stored bytes, to read with Download.chunks() (which closes it)."""
        if entry.file is None:
            raise errors.InvalidInput("a folder has no bytes to read")
        return await self._opener(entry.file.sha256)
