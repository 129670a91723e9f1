"""The content-addressed object store, the resumable partial uploads, and the browsable library
of hard links, laid out on one local filesystem (an S3-compatible store can replace it)."""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path, PurePosixPath

from photonic.errors import IntegrityError, StorageFull
from photonic.media.hashing import StreamingVerifier, durable_replace, fsync_directory
from photonic.models import ContentHash, is_content_hash
from photonic.server.direct_io import DirectAppender

READ_ONLY = 0o444


def as_storage_full(exc: BaseException) -> StorageFull | None:
    """StorageFull when exc is the kernel saying the disk (or the quota) is full, else None."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull("the server's storage is full; intake paused")
    return None


class PartialUpload:
    """One upload in progress: appends chunks to partial/<sha>.part and hashes as it goes.

    Methods do blocking I/O and are called from worker threads."""

    def __init__(self, path: Path, sha256: ContentHash, size: int) -> None:
        self.path = path
        self.sha256 = sha256
        self.size = size
        self._verifier = StreamingVerifier.resume_from_file(path) if path.exists() else None
        if self._verifier is not None and self._verifier.size > size:
            path.unlink()  # longer than the content can be: not ours to resume
            self._verifier = None
        if self._verifier is None:
            self._verifier = StreamingVerifier()
        self._out = DirectAppender(path, self._verifier.size)

    @property
    def offset(self) -> int:
        assert self._verifier is not None
        return self._verifier.size

    def append(self, data: bytes) -> None:
        """Appends at the current end; on a failed write the file is cut back and offset
        stays truthful."""
        assert self._verifier is not None
        try:
            self._out.append(data)
        except OSError as exc:
            if (full := as_storage_full(exc)) is not None:
                raise full from exc
            raise
        self._verifier.update(data)

    def finish(self) -> None:
        """Verifies size and SHA-256, then fsyncs; raises IntegrityError (and discards) on a
        mismatch, so content that is not what the agent declared is never stored."""
        assert self._verifier is not None
        digest = self._verifier.hexdigest()
        if self.offset != self.size or digest != self.sha256:
            self.close()
            self.path.unlink(missing_ok=True)
            raise IntegrityError(
                f"content {self.sha256[:12]} arrived as {self.offset} bytes hashing to "
                f"{digest[:12]}; discarded, the agent will send it again"
            )
        self._out.fsync()
        self.close()

    def close(self) -> None:
        self._out.close()


class ContentStore:
    """objects/ab/cd/<sha256> (read-only, each content once), partial/, library/."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.partial = root / "partial"
        self.library = root / "library"
        for d in (self.objects, self.partial, self.library):
            d.mkdir(parents=True, exist_ok=True)
        self._sweep_temporary_links()

    def _sweep_temporary_links(self) -> None:
        """Removes link temporaries a crash may have left; they are never visible as photos."""
        for path in self.library.rglob(".photonic-tmp-*"):
            path.unlink(missing_ok=True)

    def object_path(self, sha256: str) -> Path:
        if not is_content_hash(sha256):
            raise IntegrityError(f"{sha256!r} is not a SHA-256 hex digest")
        return self.objects / sha256[:2] / sha256[2:4] / sha256

    def has_object(self, sha256: str) -> bool:
        return self.object_path(sha256).is_file()

    def partial_offset(self, sha256: str) -> int:
        path = self.partial / f"{sha256}.part"
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return 0

    def open_partial(self, sha256: ContentHash, size: int) -> PartialUpload:
        self.object_path(sha256)  # validates the name before it touches the disk
        return PartialUpload(self.partial / f"{sha256}.part", sha256, size)

    def discard_partial(self, sha256: str) -> None:
        (self.partial / f"{sha256}.part").unlink(missing_ok=True)

    def commit(self, upload: PartialUpload, *, sync: bool = True) -> Path:
        """Verified, fsynced content moves into objects/ atomically and becomes read-only.

        sync=False leaves the fsync of the object's folder to the caller (a group sync), who
        must do it before anyone is told the content is stored. The content itself is always
        fsynced before the rename: a name must never survive a crash that its bytes did not."""
        upload.finish()
        target = self.object_path(upload.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(upload.path, READ_ONLY)
        if sync:
            durable_replace(upload.path, target)
        else:
            os.replace(upload.path, target)
        return target

    def library_file(self, agent_id: str, watch: str, rel: PurePosixPath) -> Path:
        return self.library / agent_id / watch / Path(*rel.parts)

    def link(self, sha256: str, library_file: Path, *, sync: bool = True) -> None:
        """Points library_file at the object, atomically replacing whatever was there.

        sync=False leaves the directory fsync to the caller, who may batch it, but must do it
        before the link is acknowledged to anyone."""
        library_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = library_file.parent / f".photonic-tmp-{uuid.uuid4().hex}"
        try:
            os.link(self.object_path(sha256), tmp)
        except OSError as exc:
            if (full := as_storage_full(exc)) is not None:
                raise full from exc
            raise
        os.replace(tmp, library_file)
        # rename() between two links of one inode does nothing and leaves tmp behind; that is
        # the case when a retry after a crash links a file that already holds this content.
        tmp.unlink(missing_ok=True)
        if sync:
            fsync_directory(library_file.parent)

    def holds(self, library_file: Path, sha256: str) -> bool:
        """True when library_file is a link to this content (same inode as the object)."""
        try:
            return os.path.samefile(library_file, self.object_path(sha256))
        except OSError:
            return False

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free
