"""The library's tree, as Library keeps it in step with the catalog: on a local store a tree
of hard links to the objects (store.ContentStore), with an S3 store no tree at all: the
library is a view of the catalog (the dashboard, the WebDAV export), and a path names a
catalog row, not a file."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Protocol


class LibraryTree(Protocol):
    """Paths here are strings naming library entries; relative() gives the catalog's form."""

    def library_file(self, agent_id: str, watch: str, rel: PurePosixPath) -> str: ...

    def relative(self, path: str) -> str: ...

    def absolute(self, library_path: str) -> str: ...

    def link(self, sha256: str, library_file: str, *, sync: bool = True) -> list[str]:
        """Makes the entry show the content; returns local folders to sync."""
        ...

    def holds(self, library_file: str, sha256: str) -> bool: ...

    def occupied(self, library_file: str) -> bool: ...


VIEW_ROOT = "catalog:"
"""What a catalog view's entries start with: no local folder is ever named."""


class CatalogView:
    """The library of an S3 store: entries exist as catalog rows only. Nothing is linked,
    every entry holds what the catalog says, and version names are free unless recorded
    (Library numbers versions from the catalog)."""

    def library_file(self, agent_id: str, watch: str, rel: PurePosixPath) -> str:
        return f"{VIEW_ROOT}/library/{agent_id}/{watch}/{rel}"

    def relative(self, path: str) -> str:
        if not path.startswith(VIEW_ROOT + "/"):
            raise ValueError(f"{path!r} is not a library entry")
        return path[len(VIEW_ROOT) + 1:]

    def absolute(self, library_path: str) -> str:
        return f"{VIEW_ROOT}/{library_path}"

    def link(self, sha256: str, library_file: str, *, sync: bool = True) -> list[str]:
        return []

    def holds(self, library_file: str, sha256: str) -> bool:
        return True

    def occupied(self, library_file: str) -> bool:
        return False
