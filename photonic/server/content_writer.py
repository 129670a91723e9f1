"""The blocking half of an ingest session, run in worker threads: appending received chunks to
partial files, and making complete contents durable and putting them into the store. It holds
no per-stream state of its own; what a session receives lives in its Incoming records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from photonic import errors
from photonic.grpc_options import MAX_CHUNK_BYTES
from photonic.media.chunks import decompress_chunk
from photonic.models import ChunkData, ContentHash
from photonic.server import faults
from photonic.server.catalog import ObjectCheckRow
from photonic.server.ingest_deps import IngestDeps, Placed
from photonic.server.storage.blobs import BlobUpload


@dataclass(eq=False)  # identity: a session keys its writes by the object
class Incoming:
    """Content this stream is receiving, and every path waiting for it.

    The partial file is opened at the first chunk, not at the decision: a manifest of
    thousands of new photos must not hold thousands of open files."""

    sha256: ContentHash
    size: int
    paths: Placed = field(default_factory=list)
    claimed: bool = False  # this stream holds the upload claim and must release it
    offset: int = 0  # bytes already received (and verified so far) for this content
    upload: BlobUpload | None = None
    mark: int = 0  # the group sync's mark taken before the partial was opened
    check: ObjectCheckRow | None = None  # the stored object as verified: (size, mtime_ns)
    repair: bool = False  # a quarantined copy's library entries wait for this content
    committing: bool = False  # every byte is in and its commit runs: an abort cannot stop it
    busy: int = 0  # worker threads working on this content now
    retired: bool = False  # no longer served by this stream; settled once busy is 0


class ContentWriter:
    """Worker-thread operations on the contents a session receives; every method blocks."""

    def __init__(self, deps: IngestDeps) -> None:
        self._d = deps

    def write_chunks(self, accepted: Sequence[tuple[Incoming, ChunkData]]
                      ) -> dict[Incoming, int | str]:
        """Runs in a worker thread: each file's new offset, or why its bytes were refused.

        A refusal is kept as its message only: an exception would keep its traceback, and
        with it the frames (and decoder buffers) of every refused chunk of the message, alive
        until a garbage collection."""
        out: dict[Incoming, int | str] = {}
        for incoming, chunk in accepted:
            if isinstance(out.get(incoming), str):
                continue
            try:
                out[incoming] = self._write_chunk(incoming, chunk)
            except errors.IntegrityError as exc:
                out[incoming] = str(exc)
        return out

    def _write_chunk(self, incoming: Incoming, chunk: ChunkData) -> int:
        """Opens the partial at the first chunk, decompresses within bounds, appends; returns
        the new offset."""
        upload = self.open_upload(incoming)
        data = chunk.data
        if chunk.lz4:
            data = decompress_chunk(chunk.data, expected_raw_size=chunk.raw_size,
                                    max_raw_size=MAX_CHUNK_BYTES)
        elif len(data) != chunk.raw_size:
            raise errors.IntegrityError(
                f"chunk declares {chunk.raw_size} bytes but carries {len(data)}")
        upload.append(data)
        return upload.offset

    def open_upload(self, incoming: Incoming) -> BlobUpload:
        if incoming.upload is None:
            # Offered from 0: whatever a partial holds now is not continued (there was none,
            # or it was longer than the content).
            incoming.mark = self._d.library.durability.mark()
            upload = self._d.blobs.partial(incoming.sha256, incoming.size,
                                           resume=incoming.offset > 0)
            if upload.offset != incoming.offset:
                upload.discard()
                raise errors.IntegrityError(
                    f"the partial upload of {incoming.sha256[:12]} changed since it was "
                    f"offered at {incoming.offset}; it will be offered again")
            incoming.upload = upload
        return incoming.upload

    def store_contents(self, complete: list[Incoming]) -> list[errors.IntegrityError | None]:
        """Runs in a worker thread: verified, durable content put into the store; the folders
        are fsynced by the group sync that the record after this waits for.

        Contents are made durable before any of them enters the store: each fsynced, or
        (where a group sync covers contents) all of them by one run. If a sync fails, or any
        sync failed since their bytes began to arrive, their partial files are dropped: a
        write-back error may have lost bytes the page cache still shows."""
        durability = self._d.library.durability
        problems: list[errors.IntegrityError | None] = []
        finished: list[BlobUpload] = []
        try:
            for incoming in complete:
                try:
                    upload = self.open_upload(incoming)
                    upload.finish(fsync=not durability.covers_contents)
                except errors.IntegrityError as exc:
                    problems.append(exc)
                    continue
                except OSError:
                    durability.note_failure()  # the partial was discarded by finish
                    raise
                finished.append(upload)
                problems.append(None)
            if finished:
                since = min(i.mark for i in complete)
                if durability.covers_contents:
                    durability.wait_durable(since=since)
                elif durability.failed_since(since):
                    raise errors.Transient(
                        "the server's disk reported a write error while these photos were "
                        "being stored; they will be sent again")
        except BaseException:
            for upload in finished:
                self._d.blobs.discard_partial(upload.sha256)
            raise
        for incoming in complete:
            if incoming.upload is None or not incoming.upload.finished:
                continue
            upload = incoming.upload
            durability.note_dirs(self._d.blobs.commit(upload, sync=False))
            faults.hit("after_store_rename")
            st = self._d.blobs.stat(upload.sha256)
            if st is not None:  # recorded with the version that names it (Library)
                incoming.check = (st.size, st.mtime_ns)
            if incoming.repair:
                self._d.library.repair_links(upload.sha256)
        return problems
