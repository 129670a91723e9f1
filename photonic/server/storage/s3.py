"""The BlobStore of an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, B2, Wasabi): objects
immutable and content-addressed at `<prefix>objects/ab/cd/<sha256>`, uploads resumable from
the multipart ledger in the catalog, and nothing at a content address before its bytes were
verified (s3_upload.py).

Why a staging key and a server-side copy, rather than a multipart upload completed straight
at the content address: S3 cannot read the parts of an upload before it completes, so an
upload resumed in another process (whose first bytes were hashed by a process now gone) can
only be verified after completion; completing into the content address would make unverified
bytes visible there. The copy happens inside S3 (no byte crosses this server), and content
no larger than one part (most photos) skips it: it is verified in memory and put whole."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from photonic import errors
from photonic.logfmt import event
from photonic.models import ContentHash, is_content_hash
from photonic.server.storage.blobs import BlobStat, BlobUpload, ObjectCheck
from photonic.server.storage.multipart import MultipartLedger
from photonic.server.storage.s3_client import S3Client
from photonic.server.storage.s3_upload import S3Upload

log = logging.getLogger("photonic.server.storage.s3")

MIN_PART_BYTES = 5 * 1024 * 1024
"""S3's smallest part but the last."""
STAT_CONCURRENCY = 16
"""HEADs in flight for one stat_many: a manifest's thousand known contents wait ~1,000 / 16
round trips of the endpoint's latency, not 1,000; half the client's connection pool
(s3_client.MAX_POOL_CONNECTIONS), so uploads still find connections."""
DEFAULT_PART_BYTES = 8 * 1024 * 1024
"""Two of the agent's 4 MiB chunks: at most this much is sent again after an interruption."""
UNBOUNDED_FREE_BYTES = 1 << 62
ORPHAN_AGE_S = 3600.0
"""Staging objects and unrecorded multipart uploads younger than this may belong to a commit
under way on another server sharing the bucket: recover() leaves them alone."""


class S3Reader:
    """Ranged GETs of one object; nothing is held open between reads."""

    def __init__(self, client: S3Client, key: str, size: int) -> None:
        self._client = client
        self._key = key
        self.size = size

    def read_at(self, offset: int, length: int) -> bytes:
        if offset >= self.size:
            return b""
        return self._client.read(self._key, offset, min(length, self.size - offset))

    def close(self) -> None:
        pass


class S3BlobStore:
    """Thread-safe: the boto3 client is, and the digest memo has its own lock."""

    unrecorded_objects = False
    """Every object is put by a verified upload whose commit records it (a crash between the
    two leaves an object that is simply uploaded again)."""

    def __init__(self, client: S3Client, prefix: str, ledger: MultipartLedger, *,
                 part_size_bytes: int = DEFAULT_PART_BYTES) -> None:
        if part_size_bytes < MIN_PART_BYTES:
            raise ValueError(f"S3 parts are at least {MIN_PART_BYTES} bytes")
        self.client = client
        self.ledger = ledger
        self.part_size = part_size_bytes
        self._prefix = prefix
        self._digests: dict[str, tuple[str, int, hashlib._Hash]] = {}
        self._digests_lock = threading.Lock()

    def object_key(self, sha256: str) -> str:
        if not is_content_hash(sha256):
            raise errors.IntegrityError(f"{sha256!r} is not a SHA-256 hex digest")
        return f"{self._prefix}objects/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def has(self, sha256: str) -> bool:
        return self.stat(sha256) is not None

    def stat(self, sha256: str) -> BlobStat | None:
        head = self.client.head(self.object_key(sha256))
        return None if head is None else BlobStat(head.size, head.mtime_ns)

    def stat_many(self, sha256s: Sequence[str]) -> dict[str, BlobStat | None]:
        if len(sha256s) < 2:
            return {sha: self.stat(sha) for sha in sha256s}
        with ThreadPoolExecutor(max_workers=min(STAT_CONCURRENCY, len(sha256s)),
                                thread_name_prefix="photonic-s3-stat") as pool:
            return dict(zip(sha256s, pool.map(self.stat, sha256s), strict=True))

    def open(self, sha256: str) -> S3Reader:
        if not is_content_hash(sha256):
            raise errors.NotFound(f"the server holds no object {sha256[:12]}")
        head = self.client.head(self.object_key(sha256))
        if head is None:
            raise errors.NotFound(f"the server holds no object {sha256[:12]}")
        return S3Reader(self.client, self.object_key(sha256), head.size)

    def put(self, sha256: ContentHash, data: bytes) -> None:
        if hashlib.sha256(data).hexdigest() != sha256:
            raise errors.IntegrityError(f"content {sha256[:12]} does not hash to its name")
        self.client.put(self.object_key(sha256), data, sha256)  # see commit: no HEAD first

    # uploads ---------------------------------------------------------------------------------

    def partial_offset(self, sha256: str) -> int:
        return self.ledger.multipart_offsets([sha256]).get(sha256, 0)

    def partial(self, sha256: ContentHash, size: int, *, resume: bool = True) -> S3Upload:
        self.object_key(sha256)  # validates the name before anything is sent
        state = self.ledger.multipart_of(sha256)
        if state is not None and resume and state.size == size and state.parts:
            digest = self._digest_of(sha256, state.upload_id, state.durable_offset)
            # Which upload continues from where, and whether this process saw its first
            # bytes: an operator (and the two-server tests) can tell a resume on another
            # server, or after a restart, from a fresh upload.
            event(log, "s3_upload_resumed", sha256=sha256[:16], upload=state.upload_id,
                  offset=state.durable_offset, parts=len(state.parts),
                  read_back=digest is None)
            return S3Upload(self, sha256, size, state, digest)
        if state is not None:  # superseded: a new upload starts from byte 0
            self.drop_upload(sha256, state.staging_key, state.upload_id)
        return S3Upload(self, sha256, size, None, None)

    def discard_partial(self, sha256: str) -> None:
        state = self.ledger.multipart_of(sha256)
        if state is not None:
            self.drop_upload(sha256, state.staging_key, state.upload_id)

    def commit(self, upload: BlobUpload, *, sync: bool = True) -> list[str]:
        """Puts the verified content at its address; returns when S3 holds it (sync is moot:
        nothing local changed)."""
        del sync
        if not isinstance(upload, S3Upload) or not upload.finished:
            raise ValueError(f"the upload of {upload.sha256[:12]} is not a finished S3 upload")
        key = self.object_key(upload.sha256)
        if upload.whole is not None:
            # Put without a HEAD first (one request a photo, not two): an object already at
            # this address holds these very bytes, or was altered behind photonic's back, and
            # an atomic PUT of the verified bytes leaves the same content, or repairs it.
            self.client.put(key, upload.whole, upload.sha256)
            upload.whole = None
            return []
        if self.client.head(key) is None:
            self.client.copy(upload.staging_key, key, upload.size)
        self.drop_upload(upload.sha256, upload.staging_key, upload.upload_id, completed=True)
        return []

    def begin_multipart(self, sha256: ContentHash, size: int) -> tuple[str, str]:
        """Starts a multipart upload at a fresh staging key and records it: (key, id)."""
        key = f"{self._prefix}staging/{sha256}/{uuid.uuid4().hex}"
        upload_id = self.client.create_multipart(key, sha256)
        try:
            self.ledger.begin_multipart(sha256, size, key, upload_id)
        except BaseException:
            self.client.abort_multipart(key, upload_id)
            raise
        return key, upload_id

    def drop_upload(self, sha256: str, key: str, upload_id: str, *,
                    completed: bool = False) -> None:
        """Aborts (or, once completed, deletes the staging object of) an upload and forgets
        it in the ledger and the digest memo."""
        if completed:
            self.client.delete(key)
        else:
            self.client.abort_multipart(key, upload_id)
            self.client.delete(key)  # completed before a failed verification: gone too
        self.ledger.end_multipart(sha256, upload_id)
        with self._digests_lock:
            self._digests.pop(sha256, None)

    def remember_digest(self, sha256: str, upload_id: str, offset: int,
                        digest: hashlib._Hash) -> None:
        """The hash of the bytes up to a part boundary, so a resume in this process verifies
        while streaming instead of reading the object back."""
        with self._digests_lock:
            self._digests[sha256] = (upload_id, offset, digest.copy())

    def _digest_of(self, sha256: str, upload_id: str, offset: int) -> hashlib._Hash | None:
        with self._digests_lock:
            memo = self._digests.get(sha256)
        if memo is None or memo[0] != upload_id or memo[1] != offset:
            return None
        return memo[2].copy()

    # checks ----------------------------------------------------------------------------------

    def adopt(self, sha256: ContentHash, path: Path, size: int) -> bool:
        return False  # objects are the bucket's: the caller uploads the file

    def check(self, sha256: str) -> ObjectCheck:
        key = self.object_key(sha256)
        head = self.client.head(key)
        if head is None:
            return ObjectCheck(sha256, False, -1, 0)
        digest = hashlib.sha256()
        size = 0
        try:
            for block in self.client.blocks(key):
                digest.update(block)
                size += len(block)
        except errors.Transient:
            if self.client.head(key) is None:
                return ObjectCheck(sha256, False, -1, 0)
            raise
        return ObjectCheck(sha256, digest.hexdigest() == sha256, size, head.mtime_ns)

    def quarantine(self, sha256: str) -> str | None:
        key = self.object_key(sha256)
        head = self.client.head(key)
        if head is None:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"quarantine/{sha256}.{stamp}.{uuid.uuid4().hex[:8]}"
        self.client.copy(key, f"{self._prefix}{name}", head.size)
        self.client.delete(key)
        return name

    def free_bytes(self) -> int:
        return UNBOUNDED_FREE_BYTES

    def recover(self, min_age_s: float = ORPHAN_AGE_S) -> int:
        """At server start: aborts multipart uploads the ledger does not know (under
        staging/: a crash between their start and their ledger row; elsewhere, at a content
        address or in quarantine/: a copy of an object over 5 GiB, which the SDK makes as a
        multipart upload, cut by a crash) and deletes completed staging objects (a crash
        between a commit's copy and its cleanup), all older than min_age_s. Returns how many
        were cleaned."""
        cutoff = time.time() - min_age_s
        known = self.ledger.multipart_upload_ids()
        cleaned = 0
        # Only photonic's own folders: a bucket (or a prefix of "") may be shared with others.
        for folder in ("staging/", "objects/", "quarantine/"):
            for upload in self.client.multipart_uploads(f"{self._prefix}{folder}"):
                if upload.upload_id not in known and upload.initiated_s <= cutoff:
                    self.client.abort_multipart(upload.key, upload.upload_id)
                    cleaned += 1
        for obj in self.client.objects(f"{self._prefix}staging/"):
            if obj.modified_s <= cutoff:
                self.client.delete(obj.key)
                cleaned += 1
        return cleaned + self._drop_superseded()

    def _drop_superseded(self) -> int:
        """Uploads the ledger holds of contents that are at their address now (another
        upload of the same content finished first, say on another server while this one
        was down): nothing will resume them, so they are aborted and forgotten at once."""
        dropped = 0
        for sha in self.ledger.multipart_contents():
            state = self.ledger.multipart_of(sha)
            if state is not None and self.has(sha):
                self.drop_upload(sha, state.staging_key, state.upload_id)
                dropped += 1
        return dropped
