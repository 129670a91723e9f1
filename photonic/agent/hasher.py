"""Hashes the scanner's candidate files, and in ingest mode copies them into the buffer first.

Runs in a worker thread, one group of files per call, and knows nothing of the index or of
the event loop: the scanner decides what to hash and records what comes back. Each file is
opened beneath its watch folder and checked to be the file listed (beneath.py); its hash, its
ingest copy and its EXIF are all read from that one descriptor.
"""

from __future__ import annotations

import logging
import os
import stat
import uuid
from pathlib import Path
from typing import BinaryIO

from photonic.agent.beneath import FolderDescriptors, Replaced
from photonic.agent.listing import PERMISSION_DENIED, Candidate, Skip
from photonic.agent.signature import signature_of
from photonic.agent.statedb import FileRecord
from photonic.media.exif import read_exif_summary
from photonic.media.hashing import (
    FirstBlockSink,
    copy_and_hash_fd,
    durable_replace,
    sha256_fd,
)
from photonic.media.images import JPEG_MAGIC, is_photo
from photonic.models import ContentHash, ExifSummary

# The scanner's logger: hashing is one step of a scan, and log readers filter by that name.
log = logging.getLogger("photonic.agent.scanner")

HashOutcome = FileRecord | tuple[str, str] | None  # record, (rel_path, reason) or nothing


def _unchanged_since(fd: int, before: os.stat_result, bytes_read: int) -> bool:
    """False when the file was written to while we read it; the final version comes later.
    The whole signature is compared: a writer that keeps the size and sets the mtime back
    still moves the ctime, and the index must never pair a signature with bytes that were
    not the file's at that signature."""
    after = os.fstat(fd)
    return bytes_read == after.st_size and signature_of(before) == signature_of(after)


class _JpegHead:
    """Keeps a copy of a JPEG's first block from the hash pass: read_exif_summary parses its
    EXIF from memory instead of opening the file again in exifread and Pillow (for a first
    sync of small JPEGs, that second and third read was almost half the agent's time)."""

    def __init__(self) -> None:
        self.data: bytes | None = None

    def keep(self, block: memoryview) -> None:
        if block[: len(JPEG_MAGIC)] == JPEG_MAGIC:  # other formats never use it: no copy
            self.data = bytes(block)


def _read_exif(path: Path, head: bytes | None, source: BinaryIO | None) -> ExifSummary:
    if not is_photo(path):
        return ExifSummary()
    try:
        return read_exif_summary(path, head=head, source=source)
    except Exception:  # EXIF is optional metadata, never a reason not to sync a photo
        log.warning("exif unreadable", extra={"path": str(path)}, exc_info=True)
        return ExifSummary()


class CandidateHasher:
    """Turns candidates into FileRecords; ingest copies land under ingest_dir, by content."""

    def __init__(self, ingest_dir: Path) -> None:
        self._ingest_dir = ingest_dir

    def hash_group(
        self, group: list[Candidate], ingest: bool, incomplete: bool
    ) -> list[HashOutcome]:
        """Per file: its record, (rel_path, reason) if skipped, None if gone or still changing."""
        folders = FolderDescriptors()
        try:
            return [self._hash_one(c, ingest, incomplete, folders) for c in group]
        finally:
            folders.close()

    def _hash_one(
        self, candidate: Candidate, ingest: bool, incomplete: bool, folders: FolderDescriptors
    ) -> HashOutcome:
        rel = candidate.rel_path
        try:
            fd, before = folders.open_listed(candidate.root, candidate.open_rel,
                                             candidate.file_id)
        except FileNotFoundError:
            return None  # vanished since it was listed: nothing to sync
        except Replaced as exc:
            log.warning("file not read", extra={"path": rel, "reason": str(exc)})
            return (rel, str(exc))
        except (PermissionError, OSError) as exc:
            return self._failed(rel, exc)
        try:
            return self._hash_file(candidate, fd, before, ingest, incomplete)
        except FileNotFoundError:
            return None  # vanished before or while hashing: nothing to sync
        except Skip as skip:
            return (rel, str(skip))
        except OSError as exc:
            return self._failed(rel, exc)
        finally:
            os.close(fd)

    @staticmethod
    def _failed(rel: str, exc: OSError) -> tuple[str, str]:
        if isinstance(exc, PermissionError):
            log.warning("unreadable file", extra={"path": rel})
            return (rel, PERMISSION_DENIED)
        log.warning("file read failed", extra={"path": rel, "error": str(exc)})
        return (rel, exc.strerror or str(exc))

    def _hash_file(
        self, candidate: Candidate, fd: int, before: os.stat_result, ingest: bool,
        incomplete: bool,
    ) -> FileRecord | None:
        """Hashes (and in ingest mode copies) the opened file; None if it changed meanwhile."""
        path = Path(candidate.abs_path)
        head = _JpegHead()
        keep_head = head.keep if is_photo(path) else None
        if ingest:
            copied = self._copy_into_buffer(fd, path.name, before, keep_head)
            if copied is None:
                return None
            sha, size, source = copied
            exif = _read_exif(source, head.data, None)  # the copy: the agent's own file
        else:
            sha, size = sha256_fd(fd, on_first_block=keep_head)
            source = path
            if not _unchanged_since(fd, before, size):
                return None
            with open(fd, "rb", closefd=False) as handle:
                exif = _read_exif(path, head.data, handle)
        return FileRecord(candidate.rel_path, signature_of(before), sha, exif, source, incomplete)

    def _copy_into_buffer(
        self, fd: int, name: str, before: os.stat_result, keep_head: FirstBlockSink | None
    ) -> tuple[ContentHash, int, Path] | None:
        tmp_dir = self._ingest_dir / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            # The copy keeps the original's permissions (a private photo stays private); the
            # owner may always read it, or it could never be uploaded.
            mode = (before.st_mode & 0o777) | stat.S_IRUSR
            sha, size = copy_and_hash_fd(fd, tmp, mode=mode, fsync=True,
                                         on_first_block=keep_head)
            if not _unchanged_since(fd, before, size):
                return None
            # The copy keeps the original's mtime: the queue records that mtime, and the
            # uploader refuses a source whose mtime differs from what was queued.
            os.utime(tmp, ns=(before.st_atime_ns, before.st_mtime_ns))
            # Content-addressed folder: two cards' IMG_0001.JPG never overwrite each other.
            dst = self._ingest_dir / sha[:2] / sha / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            durable_replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        return sha, size, dst
