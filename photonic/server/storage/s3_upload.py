"""One upload into S3: the agent's chunks buffered into parts of at least part_size bytes (S3
refuses smaller ones except the last), each part recorded in the multipart ledger once S3 has
it, and the SHA-256 of every byte computed while it streams.

Content no larger than one part never starts a multipart upload: it is held in memory,
verified, and put whole at its content address by commit (S3BlobStore). Larger content goes
into a multipart upload at a staging key; the ledger's parts are what a resume continues from
(the durable offset: the end of the last completed part; bytes buffered after it are sent
again). finish() completes the staging object and verifies it: by the hash computed while
streaming, or, when this process never saw the first bytes (a resume after a restart, or on
another server), by reading the staging object back. Nothing reaches the content address
before that check."""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from photonic import errors
from photonic.logfmt import event
from photonic.models import ContentHash
from photonic.server import faults
from photonic.server.storage.multipart import MultipartPart, MultipartState

if TYPE_CHECKING:
    from photonic.server.storage.s3 import S3BlobStore

log = logging.getLogger("photonic.server.storage.s3")


class S3Upload:
    """Methods block on S3 and the catalog; called from worker threads, one at a time."""

    def __init__(self, store: S3BlobStore, sha256: ContentHash, size: int,
                 state: MultipartState | None, digest: hashlib._Hash | None) -> None:
        """state: the multipart upload resumed (None: a fresh upload from byte 0); digest: the
        hash of the bytes state holds when this process computed them, else None (verified
        by reading back at finish)."""
        self.sha256 = sha256
        self.size = size
        self._store = store
        self._upload_id = state.upload_id if state is not None else ""
        self._key = state.staging_key if state is not None else ""
        self._parts: list[MultipartPart] = list(state.parts) if state is not None else []
        self._durable = sum(p.size for p in self._parts)
        self._digest = digest if state is not None else hashlib.sha256()
        self._buffer = bytearray()
        self.finished = False
        self.closed = False
        self.whole: bytes | None = None
        """Verified content held in memory (no multipart upload): commit puts it."""
        self.staging_key = ""
        """The completed, verified staging object commit copies to the content address."""

    @property
    def offset(self) -> int:
        return self._durable + len(self._buffer)

    @property
    def upload_id(self) -> str:
        return self._upload_id

    def append(self, data: bytes) -> None:
        if self.closed:
            raise errors.IntegrityError(f"the upload of {self.sha256[:12]} is closed")
        self._buffer += data
        if self._digest is not None:
            self._digest.update(data)
        if len(self._buffer) >= self._store.part_size and self.offset < self.size:
            self._send_part()

    def _send_part(self) -> None:
        """Uploads the buffer as the next part and records it; a failure closes the upload
        (the parts recorded before stay resumable)."""
        try:
            if not self._upload_id:
                self._key, self._upload_id = self._store.begin_multipart(self.sha256,
                                                                         self.size)
            number = len(self._parts) + 1
            part = MultipartPart(number, self._store.client.upload_part(
                self._key, self._upload_id, number, bytes(self._buffer)), len(self._buffer))
            if not self._store.ledger.add_multipart_part(self.sha256, self._upload_id, part):
                raise errors.Transient(f"the upload of {self.sha256[:12]} was taken over "
                                       "meanwhile; it will be offered again")
        except BaseException:
            self._buffer = bytearray()
            self.closed = True
            raise
        self._parts.append(part)
        self._durable += part.size
        self._buffer = bytearray()
        faults.hit("after_multipart_part")
        if self._digest is not None:
            self._store.remember_digest(self.sha256, self._upload_id, self._durable,
                                        self._digest)

    def finish(self, *, fsync: bool = True) -> None:
        del fsync  # an S3 object is durable when its upload completes
        if self.offset != self.size:
            self.discard()
            raise errors.IntegrityError(
                f"content {self.sha256[:12]} arrived as {self.offset} of {self.size} bytes; "
                "discarded, the agent will send it again")
        if self._digest is not None and self._digest.hexdigest() != self.sha256:
            self._refuse(self._digest.hexdigest())
        if not self._upload_id:
            self.whole = bytes(self._buffer)
            self._buffer = bytearray()
        else:
            if self._buffer:
                self._send_part()
            self._complete()
            self.staging_key = self._key
            if self._digest is None:
                self._verify_staging()
        self.closed = True
        self.finished = True

    def _complete(self) -> None:
        """Completes the staging object. An upload S3 no longer knows may have been completed
        by a process that died before its commit ended: its staging object, if whole, is
        used, but read back and verified here (this process did not see it complete)."""
        try:
            self._store.client.complete_multipart(
                self._key, self._upload_id, [(p.number, p.etag) for p in self._parts])
        except errors.NotFound:
            head = self._store.client.head(self._key)
            if head is None or head.size != self.size:
                self.discard()
                raise errors.Transient(f"the upload of {self.sha256[:12]} was lost by the "
                                       "object store; it will be sent again") from None
            self._digest = None

    def _verify_staging(self) -> None:
        """A resumed upload's bytes, read back from the completed staging object and
        hashed: the parts sent before this process took over were never hashed here."""
        digest = hashlib.sha256()
        size = 0
        for block in self._store.client.blocks(self._key):
            digest.update(block)
            size += len(block)
        event(log, "s3_upload_read_back", sha256=self.sha256[:16], size=size)
        if size != self.size or digest.hexdigest() != self.sha256:
            self._refuse(digest.hexdigest())

    def _refuse(self, digest: str) -> None:
        self.discard()
        raise errors.IntegrityError(
            f"content {self.sha256[:12]} arrived hashing to {digest[:12]}; discarded, the agent "
            "will send it again")

    def park(self) -> bool:
        """The parts already in S3 stay for a resume; the buffered tail is dropped (the
        agent sends it again from the durable offset). Nothing taken as durable is lost."""
        if self.closed:
            return False
        self._buffer = bytearray()
        self.closed = True
        return True

    def discard(self) -> None:
        """Aborts the multipart upload (and deletes a completed staging object)."""
        self.closed = True
        self._buffer = bytearray()
        self.whole = None
        if self._upload_id:
            self._store.drop_upload(self.sha256, self._key, self._upload_id)
            self._upload_id = ""
