"""The BlobStore of one local filesystem: store.ContentStore behind the seam, unchanged, so
the embedded default keeps every optimisation it has (group syncfs, O_DIRECT appends, resumable
`.resume` partials, recovery at start) and its exact behaviour."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from photonic import errors
from photonic.media.possession import pread_exactly
from photonic.models import ContentHash, is_content_hash
from photonic.server.storage.blobs import BlobStat, BlobUpload, ObjectCheck
from photonic.server.store import ContentStore, PartialUpload


class LocalReader:
    """An object file open for pread: the descriptor is taken at open, so a quarantine that
    moves the file meanwhile does not change what is read."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.size = os.fstat(fd).st_size

    def read_at(self, offset: int, length: int) -> bytes:
        return pread_exactly(self._fd, offset, length)

    def close(self) -> None:
        os.close(self._fd)


class LocalBlobStore:
    """Delegates to a ContentStore; the only thing added is the translation of its paths and
    stat results into the seam's path-free answers."""

    unrecorded_objects = True

    def __init__(self, store: ContentStore) -> None:
        self.store = store

    def has(self, sha256: str) -> bool:
        return self.store.has_object(sha256)

    def stat(self, sha256: str) -> BlobStat | None:
        st = self.store.stat_object(sha256)
        return None if st is None else BlobStat(st.st_size, st.st_mtime_ns)

    def stat_many(self, sha256s: Sequence[str]) -> dict[str, BlobStat | None]:
        return {sha: self.stat(sha) for sha in sha256s}

    def open(self, sha256: str) -> LocalReader:
        if not is_content_hash(sha256):
            raise errors.NotFound(f"the server holds no object {sha256[:12]}")
        try:
            fd = os.open(self.store.object_file(sha256), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise errors.NotFound(f"the server holds no object {sha256[:12]}") from None
        return LocalReader(fd)

    def put(self, sha256: ContentHash, data: bytes) -> None:
        upload = self.store.open_partial(sha256, len(data), resume=False)
        try:
            upload.append(data)
            self.store.commit(upload)
        finally:
            if not upload.closed:
                upload.discard()

    def partial_offset(self, sha256: str) -> int:
        return self.store.partial_offset(sha256)

    def partial(self, sha256: ContentHash, size: int, *, resume: bool = True) -> PartialUpload:
        return self.store.open_partial(sha256, size, resume=resume)

    def discard_partial(self, sha256: str) -> None:
        self.store.discard_partial(sha256)

    def commit(self, upload: BlobUpload, *, sync: bool = True) -> list[str]:
        if not isinstance(upload, PartialUpload):
            raise TypeError("a local store commits only its own partial uploads")
        return self.store.store_finished(upload, sync=sync)

    def adopt(self, sha256: ContentHash, path: Path, size: int) -> bool:
        self.store.adopt(sha256, str(path), size)
        return True

    def check(self, sha256: str) -> ObjectCheck:
        return self.store.check_object(sha256)

    def quarantine(self, sha256: str) -> str | None:
        return self.store.quarantine(sha256)

    def free_bytes(self) -> int:
        return self.store.free_bytes()

    @property
    def root(self) -> Path:
        return self.store.root
