"""The BlobStore seam: content-addressed, immutable objects and resumable uploads, with no
paths. Durability belongs to each backend: a local store fsyncs (or group-syncs) and renames,
an S3 store completes a multipart upload; a caller only learns that a commit returned.

Methods block (disk or network I/O) and are called from worker threads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from photonic.models import ContentHash


@dataclass(frozen=True)
class BlobStat:
    """What a store tells of an object without reading it: a changed size or mtime means the
    object is not the one that was verified (verification.py)."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ObjectCheck:
    """What the store found when it re-hashed an object."""

    sha256: str
    intact: bool
    size: int  # bytes found (-1: the object is missing)
    mtime_ns: int


class BlobUpload(Protocol):
    """One upload in progress: bytes appended at its offset and hashed as they arrive."""

    sha256: ContentHash
    size: int
    finished: bool
    """Verified and complete in the backend; commit() makes it the object."""
    closed: bool
    """Nothing more will be written: finished, parked or discarded."""

    @property
    def offset(self) -> int:
        """Bytes received so far (the next append starts here)."""
        ...

    def append(self, data: bytes) -> None: ...

    def finish(self, *, fsync: bool = True) -> None:
        """Verifies size and SHA-256 and completes the bytes in the backend; raises
        IntegrityError (and discards) when they are not the declared content. fsync=False
        leaves a local file's durability to the caller's group sync."""
        ...

    def park(self) -> bool:
        """Keeps what is durable for a later resume (partial_offset tells how much); False
        when bytes the backend had taken could not be made durable (they are dropped)."""
        ...

    def discard(self) -> None:
        """Drops every byte of the upload: nothing of it is resumed."""
        ...


class BlobReader(Protocol):
    """An object opened for ranged reads."""

    size: int

    def read_at(self, offset: int, length: int) -> bytes:
        """length bytes from offset; fewer only where the object ends."""
        ...

    def close(self) -> None: ...


class BlobStore(Protocol):
    """objects/ab/cd/<sha256>: each content once, never replaced, never visible before its
    bytes were verified and made durable."""

    unrecorded_objects: bool
    """Whether the store may hold objects the catalog has no verified record of (a local
    store: objects from before records were kept, or placed by hand). When False, a content
    without a record is taken as absent without asking the store, which saves a request to
    a remote store for every new photo; an object that is there after all is only stored
    again, never trusted unchecked."""

    def has(self, sha256: str) -> bool: ...

    def stat(self, sha256: str) -> BlobStat | None: ...

    def stat_many(self, sha256s: Sequence[str]) -> dict[str, BlobStat | None]:
        """stat of each: a remote store asks in parallel (a manifest's thousand known contents
        are a thousand requests)."""
        ...

    def open(self, sha256: str) -> BlobReader:
        """NotFound when the store holds no such object (a quarantined one is gone)."""
        ...

    def put(self, sha256: ContentHash, data: bytes) -> None:
        """Stores small content whole: verified, then durable, then visible."""
        ...

    def partial_offset(self, sha256: str) -> int:
        """Bytes a parked upload of this content holds durably: where a resume starts."""
        ...

    def partial(self, sha256: ContentHash, size: int, *, resume: bool = True) -> BlobUpload:
        """Opens an upload of this content, continuing a parked one when resume is True (and
        one of that size is there); a parked upload not continued is dropped."""
        ...

    def discard_partial(self, sha256: str) -> None: ...

    def commit(self, upload: BlobUpload, *, sync: bool = True) -> list[str]:
        """A finished upload becomes the object (an intact object already there is kept).
        Returns the local folders whose entries changed, for a group sync when sync=False
        (none for a remote store, whose commit is durable when it returns)."""
        ...

    def adopt(self, sha256: ContentHash, path: Path, size: int) -> bool:
        """Makes a file of the server's own the object without copying it, when the store can:
        path is on the store's filesystem, and sha256 and size were computed from its bytes as
        the server wrote them (as an upload's are). The file is made durable first and is gone
        afterwards (an intact object already there is kept instead). False, with the file left
        as it is, when the store's objects are not local files: the caller uploads a copy."""
        ...

    def check(self, sha256: str) -> ObjectCheck:
        """Re-hashes the object (reads it all)."""
        ...

    def quarantine(self, sha256: str) -> str | None:
        """Moves a damaged object aside (kept, never served); its new name, or None when it
        was already gone."""
        ...

    def free_bytes(self) -> int:
        """Room left for new content (a remote store: effectively unbounded)."""
        ...
