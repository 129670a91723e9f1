"""The content-addressed object store, the resumable partial uploads, and the browsable library
of hard links, laid out on one local filesystem (an S3-compatible store can replace it)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from photonic.errors import IntegrityError, StorageFull
from photonic.media.hashing import StreamingVerifier, fsync_directory
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

    def __init__(self, path: str, sha256: ContentHash, size: int, *, resume: bool) -> None:
        """resume: a partial file may exist (its bytes are hashed and kept)."""
        self.path = path
        self.sha256 = sha256
        self.size = size
        self._verifier = _resumed(path) if resume else None
        if self._verifier is not None and self._verifier.size > size:
            os.unlink(path)  # longer than the content can be: not ours to resume
            self._verifier = None
        if self._verifier is None:
            self._verifier = StreamingVerifier()
        # Without resume, bytes a partial file may hold are not ours: the file starts empty.
        self._out = DirectAppender(path, self._verifier.size, truncate=not resume)
        self.finished = False
        """Verified, written and closed; durable once fsynced or covered by a group sync."""

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

    def finish(self, *, fsync: bool = True) -> None:
        """Verifies size and SHA-256, writes out what waits in memory and closes; raises
        IntegrityError (and discards) on a mismatch, so content that is not what the agent
        declared is never stored.

        fsync=False leaves the file's durability to the caller's group sync, which must cover
        it before the file is renamed into the store (ContentStore.store_finished)."""
        assert self._verifier is not None
        digest = self._verifier.hexdigest()
        if self.offset != self.size or digest != self.sha256:
            self.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            raise IntegrityError(
                f"content {self.sha256[:12]} arrived as {self.offset} bytes hashing to "
                f"{digest[:12]}; discarded, the agent will send it again"
            )
        if fsync:
            self._out.fsync()
        else:
            self._out.flush()
        self.close()
        self.finished = True

    def close(self) -> None:
        self._out.close()


def _link_over(source: str, library_file: str) -> None:
    """Makes library_file a link to source, atomically replacing whatever was there."""
    try:
        os.link(source, library_file)  # a new name: one link, atomic by itself
        return
    except FileExistsError:
        pass
    tmp = f"{os.path.dirname(library_file)}/.photonic-tmp-{uuid.uuid4().hex}"
    os.link(source, tmp)
    os.replace(tmp, library_file)
    # rename() between two links of one inode does nothing and leaves tmp behind; that is
    # the case when a retry after a crash links a file that already holds this content.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def _resumed(path: str) -> StreamingVerifier | None:
    """The verifier of the bytes already in a partial file, or None when there is none."""
    try:
        return StreamingVerifier.resume_from_file(path)
    except FileNotFoundError:
        return None


class ContentStore:
    """objects/ab/cd/<sha256> (read-only, each content once), partial/, library/.

    The per-photo methods build paths as strings and remember which folders exist: with
    thousands of small photos a second, pathlib objects and repeated mkdir calls were a fifth
    of the server's Python time. A folder removed by hand is noticed (the rename or link into
    it fails) and made again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.partial = root / "partial"
        self.library = root / "library"
        for d in (self.objects, self.partial, self.library):
            d.mkdir(parents=True, exist_ok=True)
        self._root_str = os.fspath(root)
        self._objects_str = os.fspath(self.objects)
        self._partial_str = os.fspath(self.partial)
        self._library_str = os.fspath(self.library)
        self._known_dirs: set[str] = set()
        self._sweep_temporary_links()

    def _sweep_temporary_links(self) -> None:
        """Removes link temporaries a crash may have left; they are never visible as photos."""
        for path in self.library.rglob(".photonic-tmp-*"):
            path.unlink(missing_ok=True)

    def object_path(self, sha256: str) -> Path:
        return Path(self.object_file(sha256))

    def object_file(self, sha256: str) -> str:
        if not is_content_hash(sha256):
            raise IntegrityError(f"{sha256!r} is not a SHA-256 hex digest")
        return f"{self._objects_str}/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def has_object(self, sha256: str) -> bool:
        return os.path.isfile(self.object_file(sha256))

    def _partial_file(self, sha256: str) -> str:
        self.object_file(sha256)  # validates the name before it touches the disk
        return f"{self._partial_str}/{sha256}.part"

    def partial_offset(self, sha256: str) -> int:
        try:
            return os.stat(self._partial_file(sha256)).st_size
        except FileNotFoundError:
            return 0

    def open_partial(self, sha256: ContentHash, size: int, *, resume: bool = True
                     ) -> PartialUpload:
        """resume=False starts from an empty file whatever a partial holds (the caller saw
        none, or one it will not continue): one stat and one read fewer per photo. Only the
        stream holding the content's upload claim opens its partial."""
        return PartialUpload(self._partial_file(sha256), sha256, size, resume=resume)

    def discard_partial(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._partial_file(sha256))

    def commit(self, upload: PartialUpload, *, sync: bool = True) -> list[str]:
        """Verifies and fsyncs the content, then moves it into objects/ (store_finished)."""
        upload.finish(fsync=True)
        return self.store_finished(upload, sync=sync)

    def store_finished(self, upload: PartialUpload, *, sync: bool = True) -> list[str]:
        """Verified content the caller has made durable (fsynced, or covered by a group sync
        since it finished) moves into objects/ atomically and becomes read-only: a name must
        never survive a crash that its bytes did not. Returns the folders whose entries
        changed: the object's, and the parents of folders made for it.

        sync=False leaves the fsync of those folders to the caller (a group sync), who must do
        it before anyone is told the content is stored."""
        if not upload.finished:
            raise ValueError(f"the upload of {upload.sha256[:12]} is not finished")
        target = self.object_file(upload.sha256)
        os.chmod(upload.path, READ_ONLY)
        changed = self._put(upload.path, target, lambda: os.replace(upload.path, target))
        if sync:
            for d in [*changed, self._partial_str]:
                fsync_directory(d)
        return changed

    def _put(self, source: str, destination: str, put: Callable[[], None]) -> list[str]:
        """Runs put, which makes destination from source (a rename or a link), in a folder
        made when needed; returns the folders whose entries changed (destination's, and the
        parents of folders made for it). A folder removed by hand since the store last saw
        it is made again."""
        folder = os.path.dirname(destination)
        changed = self._ensure_dir(folder)
        try:
            put()
        except FileNotFoundError:
            if not os.path.exists(source):
                raise
            self._known_dirs.discard(folder)
            changed = self._ensure_dir(folder)
            put()
        return [*changed, folder]

    def _ensure_dir(self, folder: str) -> list[str]:
        """Makes folder (and missing parents); returns the parents whose entries changed."""
        if folder in self._known_dirs:
            return []
        made: list[str] = []
        missing = folder
        while not os.path.isdir(missing):
            made.append(missing)
            missing = os.path.dirname(missing)
        for d in reversed(made):
            with contextlib.suppress(FileExistsError):  # another thread made it meanwhile
                os.mkdir(d)
        self._known_dirs.add(folder)
        return [os.path.dirname(d) for d in made]

    def library_file(self, agent_id: str, watch: str, rel: PurePosixPath) -> str:
        """rel must be a safe relative path (paths.safe_relative_path): it is joined as is."""
        return f"{self._library_str}/{agent_id}/{watch}/{rel}"

    def relative(self, path: str) -> str:
        """A path under the store root as the catalog records it (POSIX, relative)."""
        if not path.startswith(self._root_str + "/"):
            raise ValueError(f"{path!r} is not inside {self._root_str!r}")
        return path[len(self._root_str) + 1:]

    def link(self, sha256: str, library_file: str, *, sync: bool = True) -> list[str]:
        """Points library_file at the object, atomically replacing whatever was there.
        Returns the folders whose entries changed.

        sync=False leaves the fsync of those folders to the caller, who may batch it, but
        must do it before the link is acknowledged to anyone."""
        source = self.object_file(sha256)
        try:
            changed = self._put(source, library_file, lambda: _link_over(source, library_file))
        except OSError as exc:
            if (full := as_storage_full(exc)) is not None:
                raise full from exc
            raise
        if sync:
            for d in changed:
                fsync_directory(d)
        return changed

    def holds(self, library_file: str | Path, sha256: str) -> bool:
        """True when library_file is a link to this content (same inode as the object)."""
        try:
            return os.path.samefile(library_file, self.object_file(sha256))
        except OSError:
            return False

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free
