"""Which stored content may be served: only content the catalog references (a version of a
library path, either side of a conflict, a job's output), named by a well-formed SHA-256.
Everything else the store may hold (quarantined or orphaned objects, partial uploads) is not
found, whatever a caller guesses."""

from __future__ import annotations

from typing import Protocol

from photonic import errors
from photonic.models import is_content_hash
from photonic.server.catalog import LocationRow


class MediaCatalog(Protocol):
    """What serving content reads from the catalog."""

    def library_paths_of(self, sha256: str) -> list[str]: ...
    def conflict_paths_of(self, sha256: str) -> list[str]: ...
    def location(self, location_id: int) -> LocationRow | None: ...


class OutputIndex(Protocol):
    """What serving content reads from the job queue."""

    def outputs_of_sha(self, sha256: str) -> bool: ...


def checked_sha256(text: str) -> str:
    """text when it is 64 lowercase hex digits, checked before anything is looked up."""
    if len(text) != 64 or not is_content_hash(text):
        raise errors.InvalidInput("a content id is a SHA-256: 64 lowercase hex digits")
    return text


def file_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


class ContentRule:
    def __init__(self, catalog: MediaCatalog, outputs: OutputIndex) -> None:
        self._catalog = catalog
        self._outputs = outputs

    def name_of(self, sha256: str) -> str:
        """The file name the catalog gives this content (its first library path's, else a
        conflict's); raises InvalidInput for a malformed id and NotFound when the catalog
        references it nowhere. Blocking: call it from a thread."""
        checked_sha256(sha256)
        for paths in (self._catalog.library_paths_of, self._catalog.conflict_paths_of):
            found = paths(sha256)
            if found:
                return file_name(found[0])
        if self._outputs.outputs_of_sha(sha256):
            return sha256
        raise errors.NotFound(f"no photo, conflict or job output has content {sha256[:12]}")
