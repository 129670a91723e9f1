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

    def refusal(self, agent_id: str, watch: str, rel: PurePosixPath) -> str | None:
        """Why no photo can be recorded at rel, or None. A local tree answers None: its
        filesystem refuses such a path when it is linked (store.py _UNSTORABLE)."""
        ...


class TreeLookups(Protocol):
    """What a catalog view asks the catalog (catalog_browse, catalog_tree)."""

    def folder_exists(self, agent_id: str, watch_name: str, folder: str) -> bool: ...

    def tree_file(self, agent_id: str, watch_name: str, folder: str, name: str
                  ) -> object | None: ...


A_FILE_STANDS = "a file of the same name stands where one of its folders would be"
A_FOLDER_STANDS = "a folder of the same name stands there"


VIEW_ROOT = "catalog:"
"""What a catalog view's entries start with: no local folder is ever named."""


class CatalogView:
    """The library of an S3 store: entries exist as catalog rows only. Nothing is linked,
    every entry holds what the catalog says, and version names are free unless recorded
    (Library numbers versions from the catalog). It is still a tree (the WebDAV export,
    Finder, darktable): a name is a file or a folder, never both, as on a local disk."""

    def __init__(self, catalog: TreeLookups) -> None:
        self._catalog = catalog

    def refusal(self, agent_id: str, watch: str, rel: PurePosixPath) -> str | None:
        """A folder where rel's file would be, or a file where one of its folders would be,
        is refused with the sentence the local store gives for the same path."""
        if self._catalog.folder_exists(agent_id, watch, str(rel)):
            return A_FOLDER_STANDS
        for folder in list(rel.parents)[:-1]:  # its folders, '.' (the watch itself) left out
            parent = "" if str(folder.parent) == "." else str(folder.parent)
            if self._catalog.tree_file(agent_id, watch, parent, folder.name) is not None:
                return A_FILE_STANDS
        return None

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
