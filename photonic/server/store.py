"""The content-addressed object store, the resumable partial uploads, and the browsable library
of hard links, laid out on one local filesystem (an S3-compatible store can replace it)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from photonic.errors import IntegrityError, StorageFull, Unstorable
from photonic.logfmt import event
from photonic.media.hashing import StreamingVerifier, fsync_directory, sha256_file
from photonic.models import ContentHash, is_content_hash
from photonic.paths import tagged_path
from photonic.server.direct_io import DirectAppender
from photonic.server.storage.blobs import ObjectCheck as ObjectCheck
from photonic.server.storage.tree import A_FILE_STANDS, A_FOLDER_STANDS

READ_ONLY = 0o444
PARTIAL_SUFFIX = ".part"
"""A partial file a live upload is writing; never resumed (see PartialUpload)."""
RESUMABLE_SUFFIX = ".resume"
"""A parked upload's partial file, fsynced when parked; the only kind that is resumed."""

log = logging.getLogger("photonic.server.store")

_UNSTORABLE = {
    errno.ENOTDIR: A_FILE_STANDS,
    errno.EISDIR: A_FOLDER_STANDS,
    errno.ENAMETOOLONG: "it is too long for the server's filesystem",
    errno.ELOOP: "one of its folders is a symbolic link",
}
"""Why a library path cannot be made, by errno: permanent for that path, whatever is sent."""


def as_storage_full(exc: BaseException) -> StorageFull | None:
    """StorageFull when exc is the kernel saying the disk (or the quota) is full, else None."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull("the server's storage is full; intake paused")
    return None


class PartialUpload:
    """One upload in progress: appends chunks to partial/<sha>.part and hashes as it goes.

    A partial file is in one of two states, told apart by its name:
    - `<sha>.part`: being written by a live upload. Whether its bytes would survive a power
      loss or a failing disk is unknown, so it is never resumed: a server restart removes it
      (ContentStore.recover).
    - `<sha>.resume`: a parked upload (its stream ended) whose bytes were fsynced when it was
      parked: resuming continues from bytes known to be on the disk. Resuming renames it back
      to `.part` before a byte is appended, so a crash mid-append leaves nothing resumable.

    Hashing the bytes already there and appending the new ones go through one descriptor,
    so both see one file whatever happens to its name meanwhile.

    Methods do blocking I/O and are called from worker threads."""

    def __init__(self, part: str, resumable: str, sha256: ContentHash, size: int, *,
                 resume: bool) -> None:
        """resume: continue a parked upload if there is one (its bytes are hashed and kept)."""
        self.path = part
        self._resumable = resumable
        self.sha256 = sha256
        self.size = size
        resumed = False
        if resume:
            try:
                os.rename(resumable, part)
                resumed = True
            except FileNotFoundError:
                pass
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(part, flags | (0 if resumed else os.O_TRUNC), 0o600)
        try:
            verifier = StreamingVerifier()
            if resumed:
                verifier = StreamingVerifier.resume_from_fd(fd)
                if verifier.size > size:  # longer than the content can be: not ours to resume
                    os.ftruncate(fd, 0)
                    verifier = StreamingVerifier()
            self._verifier = verifier
            self._out = DirectAppender(part, verifier.size, fd=fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
            raise
        self.finished = False
        """Verified, written and closed; durable once fsynced or covered by a group sync."""
        self.closed = False
        """Nothing more will be written: finished, parked, or discarded."""

    @property
    def offset(self) -> int:
        return self._verifier.size

    def append(self, data: bytes) -> None:
        """Appends at the current end. A failed write discards the partial: a disk that
        refuses a write (full, or failing) leaves the durability of what it took before
        unknown, and nothing is resumed from bytes of unknown durability."""
        try:
            self._out.append(data)
        except OSError as exc:
            self.discard()
            if (full := as_storage_full(exc)) is not None:
                raise full from exc
            raise
        self._verifier.update(data)

    def finish(self, *, fsync: bool = True) -> None:
        """Verifies size and SHA-256, writes out what waits in memory and closes; raises
        IntegrityError (and discards) on a mismatch, so content that is not what the agent
        declared is never stored. A write or fsync that fails discards the partial too (and
        re-raises): after a write-back error the page cache may show bytes the disk lost, so
        nothing may be resumed from it.

        fsync=False leaves the file's durability to the caller's group sync, which must cover
        it before the file is renamed into the store (ContentStore.store_finished)."""
        digest = self._verifier.hexdigest()
        if self.offset != self.size or digest != self.sha256:
            self.discard()
            raise IntegrityError(
                f"content {self.sha256[:12]} arrived as {self.offset} bytes hashing to "
                f"{digest[:12]}; discarded, the agent will send it again"
            )
        try:
            if fsync:
                self._out.fsync()
            else:
                self._out.flush()
        except BaseException:
            self.discard()
            raise
        self._out.close()
        self.closed = True
        self.finished = True

    def park(self) -> bool:
        """Keeps the bytes received so far for a later resume: fsynced, then renamed to
        `.resume`. Returns False (and discards) when they cannot be made durable. A no-op
        once finished or discarded."""
        if self.closed:
            return False
        try:
            self._out.fsync()
            self._out.close()
            os.rename(self.path, self._resumable)
        except OSError:
            self.discard()
            return False
        self.closed = True
        return True

    def discard(self) -> None:
        """Closes and removes the partial file: none of its bytes are kept."""
        self.closed = True
        self._out.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _link_over(source: str, library_file: str) -> None:
    """Makes library_file a link to source, atomically replacing whatever was there."""
    try:
        os.link(source, library_file)  # the name is free again (kept aside, or removed)
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


def _free_aside_name(path: str) -> str:
    """A name beside path for a file photonic must keep but not serve there:
    `name.library-edit.ext`, then `name.library-edit~1.ext`, ..."""
    for attempt in range(1000):
        candidate = str(tagged_path(PurePosixPath(path), ".library-edit", attempt))
        if not os.path.lexists(candidate):
            return candidate
    raise FileExistsError(f"no free name beside {os.path.basename(path)}")


class ContentStore:
    """objects/ab/cd/<sha256> (read-only, each content once), partial/, library/, and
    quarantine/ (damaged objects, kept for a person to look at, never served).

    The per-photo methods build paths as strings and remember which folders exist: with
    thousands of small photos a second, pathlib objects and repeated mkdir calls were a fifth
    of the server's Python time. A folder removed by hand is noticed (the rename or link into
    it fails) and made again."""

    def __init__(self, root: Path) -> None:
        """Creates the folders; recover() is for the server at start only (it removes what
        a live server may be writing)."""
        self.root = root
        self.objects = root / "objects"
        self.partial = root / "partial"
        self.library = root / "library"
        self.quarantine_dir = root / "quarantine"
        # Created private (README, "Who can read what"): the user running the server browses
        # library/ as before. An existing root keeps the mode (and ACLs) its admin gave it.
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for d in (self.objects, self.partial, self.library):
            d.mkdir(parents=True, exist_ok=True)
        self._root_str = os.fspath(root)
        self._objects_str = os.fspath(self.objects)
        self._partial_str = os.fspath(self.partial)
        self._library_str = os.fspath(self.library)
        self._known_dirs: set[str] = set()

    def recover(self) -> None:
        """At server start, before any stream: removes link temporaries a crash may have left
        (never visible as photos) and partial files that were being written when the last
        server process ended, whose bytes may never have reached the disk."""
        for path in self.library.rglob(".photonic-tmp-*"):
            path.unlink(missing_ok=True)
        for path in self.partial.glob(f"*{PARTIAL_SUFFIX}"):
            path.unlink(missing_ok=True)

    def object_path(self, sha256: str) -> Path:
        return Path(self.object_file(sha256))

    def object_file(self, sha256: str) -> str:
        if not is_content_hash(sha256):
            raise IntegrityError(f"{sha256!r} is not a SHA-256 hex digest")
        return f"{self._objects_str}/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def has_object(self, sha256: str) -> bool:
        """Whether a file stands at the object's name; says nothing about its bytes (see
        stat_object and check_object)."""
        return os.path.isfile(self.object_file(sha256))

    def stat_object(self, sha256: str) -> os.stat_result | None:
        try:
            st = os.stat(self.object_file(sha256))
        except FileNotFoundError:
            return None
        return st if stat.S_ISREG(st.st_mode) else None

    def check_object(self, sha256: str) -> ObjectCheck:
        """Re-hashes the object: intact when its bytes hash to its name. Blocking; reads it
        all."""
        path = self.object_file(sha256)
        try:
            st = os.stat(path)
            digest, size = sha256_file(Path(path))
        except FileNotFoundError:
            return ObjectCheck(sha256, False, -1, 0)
        return ObjectCheck(sha256, digest == sha256, size, st.st_mtime_ns)

    def quarantine(self, sha256: str) -> str | None:
        """Moves a damaged object out of objects/ into quarantine/ (kept, never served), so
        the next upload of its content is stored afresh. Returns the quarantined file's path
        relative to the root, or None when the object was already gone."""
        self.quarantine_dir.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = f"{self.quarantine_dir}/{sha256}.{stamp}.{uuid.uuid4().hex[:8]}"
        try:
            os.rename(self.object_file(sha256), target)
        except FileNotFoundError:
            return None
        fsync_directory(self.quarantine_dir)
        fsync_directory(os.path.dirname(self.object_file(sha256)))
        return self.relative(target)

    def _partial_file(self, sha256: str) -> str:
        self.object_file(sha256)  # validates the name before it touches the disk
        return f"{self._partial_str}/{sha256}{PARTIAL_SUFFIX}"

    def _resumable_file(self, sha256: str) -> str:
        self.object_file(sha256)
        return f"{self._partial_str}/{sha256}{RESUMABLE_SUFFIX}"

    def partial_offset(self, sha256: str) -> int:
        """Bytes a parked upload of this content holds (0 when none): where a resume starts."""
        try:
            return os.stat(self._resumable_file(sha256)).st_size
        except FileNotFoundError:
            return 0

    def open_partial(self, sha256: ContentHash, size: int, *, resume: bool = True
                     ) -> PartialUpload:
        """resume=False starts from an empty file whatever a parked upload holds (the caller
        saw none, or one it will not continue): one stat and one read fewer per photo. Only
        the stream holding the content's upload claim opens its partial."""
        return PartialUpload(self._partial_file(sha256), self._resumable_file(sha256), sha256,
                             size, resume=resume)

    def discard_partial(self, sha256: str) -> None:
        for path in (self._partial_file(sha256), self._resumable_file(sha256)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def commit(self, upload: PartialUpload, *, sync: bool = True) -> list[str]:
        """Verifies and fsyncs the content, then puts it into objects/ (store_finished)."""
        upload.finish(fsync=True)
        return self.store_finished(upload, sync=sync)

    def store_finished(self, upload: PartialUpload, *, sync: bool = True) -> list[str]:
        """Verified content the caller has made durable (fsynced, or covered by a group sync
        since it finished) becomes the object, read-only: a name must never survive a crash
        that its bytes did not. Returns the folders whose entries changed: the object's, the
        partial folder, and the parents of folders made for it.

        An object is never replaced: the partial is linked to the object's name (which fails
        if the name exists) and then unlinked. If an object stands there already, it is
        re-hashed: intact, the new copy is dropped; damaged, it is quarantined and the new
        copy takes its place.

        sync=False leaves the fsync of those folders to the caller (a group sync), who must do
        it before anyone is told the content is stored."""
        if not upload.finished:
            raise ValueError(f"the upload of {upload.sha256[:12]} is not finished")
        return self._store_verified(upload.path, upload.sha256, sync=sync)

    def adopt(self, sha256: ContentHash, path: str, size: int) -> list[str]:
        """A file of the server's own under partial/ (an image copied out of a submitted ZIP)
        whose SHA-256 and size were computed from its bytes as they were written becomes the
        object: fsynced, then named as store_finished names an upload, so its bytes are not
        written a second time. A file whose size is not `size` any more is refused."""
        if not path.startswith(self._partial_str + "/"):
            raise ValueError(f"{path!r} is not under {self._partial_str!r}")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            if os.fstat(fd).st_size != size:
                raise IntegrityError(f"the staged copy of {sha256[:12]} changed size "
                                     "before it was stored")
            os.fsync(fd)
        finally:
            os.close(fd)
        return self._store_verified(path, sha256)

    def _store_verified(self, path: str, sha256: str, *, sync: bool = True) -> list[str]:
        target = self.object_file(sha256)
        os.chmod(path, READ_ONLY)
        try:
            changed = self._put(path, target, lambda: os.link(path, target))
        except FileExistsError:
            if not self.check_object(sha256).intact:
                self.quarantine(sha256)
                changed = self._put(path, target, lambda: os.link(path, target))
            else:
                changed = []
        # The file's name under partial/ may outlive a crash: recover() (an upload's partial)
        # or the upload intake (its spool) removes it at the next start.
        os.unlink(path)
        if sync:
            for d in [*changed, os.path.dirname(path)]:
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
        kept = False

        def put() -> None:
            nonlocal kept
            try:
                os.link(source, library_file)  # a new name: one link, atomic by itself
                return
            except FileExistsError:  # link() found the object, then the name taken
                pass
            kept = self._keep_aside_if_only_copy(library_file) or kept
            _link_over(source, library_file)

        try:
            changed = self._put(source, library_file, put)
        except OSError as exc:
            if (full := as_storage_full(exc)) is not None:
                raise full from exc
            if (why := _UNSTORABLE.get(exc.errno or 0)) is not None:
                raise Unstorable(f"the server cannot store a photo at this path: {why}; "
                                 "rename the file or its folder") from None
            raise
        if kept:
            changed.append(os.path.dirname(library_file))
        if sync:
            for d in changed:
                fsync_directory(d)
        return changed

    def _keep_aside_if_only_copy(self, library_file: str) -> bool:
        """A library file with a single link is no object of photonic's (every object has its
        own name in objects/ as well): a person put it there, for example an editor that saved
        an edit as a new file. photonic never deletes it: before the path is linked to an
        object again, that file moves to `name.library-edit.ext` beside it."""
        try:
            st = os.lstat(library_file)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return False
        aside = _free_aside_name(library_file)
        os.rename(library_file, aside)
        event(log, "library_edit_kept", logging.WARNING, path=self.relative(library_file),
              kept_as=self.relative(aside))
        return True

    def holds(self, library_file: str | Path, sha256: str) -> bool:
        """True when library_file is a link to this content (same inode as the object)."""
        try:
            return os.path.samefile(library_file, self.object_file(sha256))
        except OSError:
            return False

    def occupied(self, library_file: str) -> bool:
        """Whether anything (a link, a person's file, a folder) stands at library_file."""
        return os.path.lexists(library_file)

    def refusal(self, agent_id: str, watch: str, rel: PurePosixPath) -> str | None:
        """None: the filesystem itself refuses a path it cannot hold, at link (_UNSTORABLE)."""
        return None

    def absolute(self, library_path: str) -> str:
        """A path as the catalog records it (relative to the root), made absolute."""
        return f"{self._root_str}/{library_path}"

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free
