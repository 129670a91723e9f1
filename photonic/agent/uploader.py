"""Drains the agent's durable queue to the server: plans batches by shoot, streams files over
parallel SyncBatch streams, and releases a queue entry only on COMMITTED or HAVE."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from photonic import errors
from photonic.agent.acks import Ack, AckRecorder
from photonic.agent.bandwidth import TokenBucket
from photonic.agent.batcher import AdaptiveBatchSize, group_units, plan_batches
from photonic.agent.client import ServerClient, SyncStream
from photonic.agent.filesource import FileChanged, FileSource, source_root
from photonic.agent.metrics import AgentMetrics
from photonic.agent.statedb import AgentStateDB, PendingFile
from photonic.grpc_options import MAX_CHUNKS_PER_RUN
from photonic.logfmt import event
from photonic.media.chunks import AdaptiveCompressor
from photonic.media.hashing import sha256_file
from photonic.media.possession import proof_digest
from photonic.models import (
    ChunkData,
    CommittedFile,
    ConflictPolicy,
    Decision,
    FailedFile,
    FileDecision,
    ManifestEntry,
    PossessionProof,
)

log = logging.getLogger("photonic.agent.uploader")


@dataclass(frozen=True)
class UploaderSettings:
    agent_id: str
    chunk_size_bytes: int
    compression: str
    compression_min_saving: float
    parallel_transfers: int
    batch_size: int
    retry_attempts: int
    conflict_policy: ConflictPolicy
    shoot_gap_s: float
    buffer_path: Path


@dataclass
class SyncTotals:
    """What one drain did; printed by `photonic agent --once` and used by the status view."""

    files_uploaded: int = 0
    files_deduplicated: int = 0
    files_rejected: int = 0
    files_failed: int = 0
    files_changed: int = 0
    conflicts: int = 0
    bytes_sent: int = 0
    raw_bytes_sent: int = 0
    bytes_acknowledged: int = 0
    started_monotonic: float = field(default_factory=time.monotonic)

    @property
    def files_done(self) -> int:
        return self.files_uploaded + self.files_deduplicated


Rescan = Callable[[PendingFile], Awaitable[bool]]
"""Hashes a queued file again, even if its size and mtime look unchanged; True if it was
queued anew or dropped from the queue."""


class Uploader:
    def __init__(self, db: AgentStateDB, settings: UploaderSettings, bucket: TokenBucket,
                 metrics: AgentMetrics, rescan: Rescan) -> None:
        self._db = db
        self._s = settings
        self._bucket = bucket
        self._metrics = metrics
        self._rescan = rescan
        self._batch_size = AdaptiveBatchSize()
        self._lanes = settings.parallel_transfers
        self._acks = AckRecorder(self._record_acks)
        self.totals = SyncTotals()

    async def drain(self, client: ServerClient) -> SyncTotals:
        """Uploads until the queue holds nothing new; files that failed this round wait for the
        next drain, so one stubborn file can never spin the loop."""
        tried: set[int] = set()
        while True:
            pending = await asyncio.to_thread(
                self._db.pending, max(self._s.batch_size * self._s.parallel_transfers, 500),
                exclude_ids=tried)
            if not pending:
                return self.totals
            tried.update(f.id for f in pending)
            batches = plan_batches(pending, shoot_gap_s=self._s.shoot_gap_s,
                                   max_files=self._s.batch_size,
                                   max_bytes=self._batch_size.max_bytes)
            started, before = time.monotonic(), self.totals.raw_bytes_sent
            await self._send_batches(client, [batch.files for batch in batches])
            elapsed = time.monotonic() - started
            self._batch_size.observe(self.totals.raw_bytes_sent - before, elapsed)
            self._metrics.sync_duration.labels(self._s.agent_id).observe(elapsed)

    async def _send_batches(self, client: ServerClient,
                            batches: Sequence[Sequence[PendingFile]]) -> None:
        """Streams batches, in order, over up to `lanes` parallel SyncBatch calls.

        Each batch is dealt into one part per lane; every lane takes the next part as soon as
        its own call has finished, so no lane idles while another finishes a batch's last
        photo. A lane refused by the server's max_concurrent_syncs halves the lanes and stops;
        its photos wait for the next round. Any other failure stops every lane from taking
        more work, and is raised once the calls in flight have ended."""
        work = deque(part for files in batches for part in _spread(files, self._lanes))
        stop = asyncio.Event()

        async def lane() -> None:
            while work and not stop.is_set():
                try:
                    await self._stream(client, work.popleft())
                except errors.LimitExceeded:
                    raise
                except BaseException:
                    stop.set()
                    raise

        tasks = [asyncio.create_task(lane()) for _ in range(min(self._lanes, len(work)))]
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for t in tasks:
                t.cancel()
            await self._acks.flush()
        failures = [r for r in results if isinstance(r, BaseException)]
        limited = [r for r in failures if isinstance(r, errors.LimitExceeded)]
        if limited:
            self._lanes = max(1, self._lanes // 2)
            event(log, "parallel_streams_reduced", logging.WARNING, agent=self._s.agent_id,
                  lanes=self._lanes, reason=str(limited[0]))
        other = [r for r in failures if not isinstance(r, errors.LimitExceeded)]
        if other:
            raise other[0]
        if limited and len(limited) == len(results):
            raise limited[0]

    async def _stream(self, client: ServerClient, files: Sequence[PendingFile]) -> None:
        batch_id = uuid.uuid4().hex[:16]
        stream = client.open_sync(batch_id)
        try:
            await _Exchange(self, stream, files, batch_id).run()
        finally:
            stream.cancel()

    # callbacks used by _Exchange ---------------------------------------------------------

    async def manifest_entries(self, files: Sequence[PendingFile]) -> list[ManifestEntry]:
        def build() -> list[ManifestEntry]:
            out = []
            for f in files:
                # The base is read now, not at enqueue time: an older version of this path
                # may have been committed since.
                indexed = self._db.get_entry(f.watch_name, f.relative_path)
                base = indexed.synced_sha256 if indexed is not None else f.base_sha256
                out.append(ManifestEntry(
                    sha256=f.sha256, size=f.size, watch_name=f.watch_name,
                    relative_path=f.relative_path, exif=f.exif, mtime_ns=f.mtime_ns,
                    base_sha256=base, incomplete=f.incomplete))
            return out
        return await asyncio.to_thread(build)

    def synced(self, f: PendingFile, dedup: bool, conflict: bool) -> None:
        """The server holds f durably; its queue entry is released with the next group."""
        self._acks.add(Ack(f, dedup, conflict))

    async def _record_acks(self, acks: list[Ack]) -> None:
        await asyncio.to_thread(self._release, acks)
        for ack in acks:
            if ack.dedup:
                self.totals.files_deduplicated += 1
            else:
                self.totals.files_uploaded += 1
            self.totals.bytes_acknowledged += ack.file.size
            self.totals.conflicts += int(ack.conflict)
            self._metrics.files.labels(self._s.agent_id,
                                       "deduplicated" if ack.dedup else "uploaded").inc()

    def _release(self, acks: list[Ack]) -> None:
        """One durable commit for the group, then the ingest copies it no longer needs:
        ingest copies exist only until the server has the photo."""
        self._db.mark_synced_many([(a.file.id, a.file.sha256) for a in acks])
        ingest = self.ingest_dir
        for a in acks:
            f = a.file
            if (f.source_path.is_relative_to(ingest)
                    and not self._db.source_in_use(f.source_path)):
                f.source_path.unlink(missing_ok=True)

    @property
    def ingest_dir(self) -> Path:
        """Where ingest copies live: a queued file there is read beneath it."""
        return self._s.buffer_path / "ingest"

    async def failed(self, f: PendingFile, reason: str, *, permanent: bool) -> None:
        # The server refused bytes that are no longer what was queued (a rewrite that kept
        # size and mtime is seen only by the server's SHA-256): queue them anew. If the
        # rescan finds nothing to queue, this counts as a failed attempt.
        if (not permanent and await asyncio.to_thread(_differs_from_queued, f)
                and await self.changed(f)):
            return
        attempts = 1 if permanent else self._s.retry_attempts
        await asyncio.to_thread(self._db.mark_failed, f.id, reason, max_attempts=attempts,
                                permanent=permanent)
        if permanent:
            self.totals.files_rejected += 1
        else:
            self.totals.files_failed += 1
        self._metrics.files.labels(self._s.agent_id,
                                   "rejected" if permanent else "failed").inc()
        event(log, "file_not_synced", logging.WARNING, agent=self._s.agent_id,
              path=f.relative_path, watch=f.watch_name, reason=reason, permanent=permanent)

    def source(self, f: PendingFile, offset: int) -> FileSource:
        """The queued file as the upload reads it: confined to its watch folder or the ingest
        buffer, and refused if it changed since it was queued."""
        root = source_root(f.source_path, f.relative_path, self.ingest_dir)
        return FileSource(f.source_path, root=root, size=f.size, mtime_ns=f.mtime_ns,
                          offset=offset, chunk_bytes=self._s.chunk_size_bytes,
                          compressor=AdaptiveCompressor(
                              self._s.compression, min_saving=self._s.compression_min_saving))

    def plan_sends(self, ready: Sequence[tuple[PendingFile, int]], runs: bool
                   ) -> list[tuple[bool, list[tuple[PendingFile, int]]]]:
        """Groups the files to send, each as (is a run, files). With runs, files whose rest
        fits in one chunk share messages (up to one chunk's bytes and MAX_CHUNKS_PER_RUN
        each); any other file is a group of its own, streamed chunk by chunk."""
        limit = self._s.chunk_size_bytes
        groups: list[tuple[bool, list[tuple[PendingFile, int]]]] = []
        run: list[tuple[PendingFile, int]] = []
        run_bytes = 0
        for f, offset in ready:
            rest = f.size - offset
            if not runs or not 0 < rest <= limit:
                groups.append((False, [(f, offset)]))
                continue
            if run and (run_bytes + rest > limit or len(run) >= MAX_CHUNKS_PER_RUN):
                groups.append((True, run))
                run, run_bytes = [], 0
            run.append((f, offset))
            run_bytes += rest
        if run:
            groups.append((True, run))
        return groups

    async def send_run(self, stream: SyncStream, files: Sequence[tuple[PendingFile, int]]
                       ) -> list[tuple[PendingFile, FileChanged]]:
        """Files that each fit in one chunk: read in one worker hop, sent in one message.
        Returns the files that changed since they were queued (not sent)."""
        sources = [self.source(f, offset) for f, offset in files]
        pieces = await asyncio.to_thread(_read_whole_files, sources)
        chunks: list[ChunkData] = []
        changed: list[tuple[PendingFile, FileChanged]] = []
        for (f, _offset), piece in zip(files, pieces, strict=True):
            if isinstance(piece, FileChanged):
                changed.append((f, piece))
            else:
                start, data, lz4, raw_size = piece
                chunks.append(ChunkData(f.sha256, start, data, lz4, raw_size))
        if chunks:
            await self._bucket.take(sum(len(c.data) for c in chunks))
            await stream.send_chunk_run(chunks)
            for c in chunks:
                self._count_sent(len(c.data), c.raw_size)
        return changed

    async def send_file(self, stream: SyncStream, f: PendingFile, offset: int) -> None:
        source = self.source(f, offset)
        try:
            await asyncio.to_thread(source.open)
            while (piece := await asyncio.to_thread(source.next_chunk)) is not None:
                start, data, lz4, raw_size = piece
                await self._bucket.take(len(data))
                await stream.send_chunk(ChunkData(f.sha256, start, data, lz4, raw_size))
                self._count_sent(len(data), raw_size)
        finally:
            source.close()

    def _count_sent(self, wire_bytes: int, raw_bytes: int) -> None:
        self.totals.bytes_sent += wire_bytes
        self.totals.raw_bytes_sent += raw_bytes
        self._metrics.bytes_sent.inc(wire_bytes)
        self._metrics.raw_bytes_sent.inc(raw_bytes)

    async def changed(self, f: PendingFile) -> bool:
        """Hashes f again and queues what it holds now; True if it was queued or dropped."""
        self.totals.files_changed += 1
        event(log, "file_changed_during_upload", agent=self._s.agent_id, path=f.relative_path)
        return await self._rescan(f)


class _Exchange:
    """One SyncBatch call from the agent's side: manifest out, replies in, chunks out."""

    def __init__(self, up: Uploader, stream: SyncStream, files: Sequence[PendingFile],
                 batch_id: str) -> None:
        self._up = up
        self._stream = stream
        self._batch_id = batch_id
        self._by_key = {(f.watch_name, f.relative_path): f for f in files}
        self._by_sha: dict[str, list[PendingFile]] = defaultdict(list)
        for f in files:
            self._by_sha[f.sha256].append(f)
        self._open = set(self._by_key)
        self._sends: asyncio.Queue[tuple[PendingFile, int] | None] = asyncio.Queue()

    async def run(self) -> None:
        entries = await self._up.manifest_entries(list(self._by_key.values()))
        await self._stream.send_manifest(self._batch_id, self._up._s.agent_id,
                                         self._up._s.conflict_policy, entries)
        sender = asyncio.create_task(self._send_loop())
        try:
            async for reply in self._stream.replies():
                await self._handle(reply)
                if not self._open:
                    break
            if self._open:
                raise errors.Transient(
                    f"server closed the batch with {len(self._open)} files unanswered")
            await self._sends.put(None)
            await sender
            await self._stream.done_writing()
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _handle(self, reply: FileDecision | CommittedFile | FailedFile) -> None:
        if isinstance(reply, FailedFile):
            for f in self._by_sha.get(reply.sha256, []):
                if self._close((f.watch_name, f.relative_path)):
                    await self._up.failed(f, reply.reason, permanent=not reply.retryable)
            return
        key = (reply.watch_name, reply.relative_path)
        found = self._by_key.get(key)
        if found is None:
            return
        f = found
        if isinstance(reply, CommittedFile):
            if self._close(key):
                self._up.synced(f, dedup=False, conflict=reply.conflict)
        elif reply.action is Decision.HAVE:
            if self._close(key):
                self._up.synced(f, dedup=True, conflict=reply.conflict)
        elif reply.action is Decision.REJECT:
            if self._close(key):
                await self._up.failed(f, reply.reason, permanent=True)
        elif reply.action is Decision.PROVE:
            await self._prove(f, reply)
        else:
            await self._sends.put((f, reply.offset))

    async def _prove(self, f: PendingFile, reply: FileDecision) -> None:
        """Answers the server's challenge from the file's own bytes (a few KiB), read as the
        upload would read them (Uploader.source); a file that cannot be read any more, or
        changed since it was queued, fails this attempt like any unreadable source."""
        try:
            digest = await asyncio.to_thread(_possession_digest, self._up.source(f, 0), reply)
        except (OSError, ValueError, FileChanged) as exc:
            if self._close((f.watch_name, f.relative_path)):
                await self._up.failed(f, f"cannot read the file to prove it holds the photo: "
                                         f"{exc}", permanent=False)
            return
        await self._stream.send_proof(PossessionProof(f.sha256, reply.nonce, digest))

    def _close(self, key: tuple[str, str]) -> bool:
        if key in self._open:
            self._open.discard(key)
            return True
        return False

    async def _send_loop(self) -> None:
        while (item := await self._sends.get()) is not None:
            ready = [item]
            ended = False
            while not self._sends.empty():  # decisions that arrived together go together
                more = self._sends.get_nowait()
                if more is None:
                    ended = True
                    break
                ready.append(more)
            for as_run, group in self._up.plan_sends(ready, self._stream.accepts_chunk_runs):
                changed = (await self._up.send_run(self._stream, group) if as_run
                           else await self._send_one(*group[0]))
                for f, exc in changed:
                    if await self._gave_up(f, exc):
                        return
            if ended:
                return

    async def _send_one(self, f: PendingFile, offset: int) -> list[tuple[PendingFile, FileChanged]]:
        try:
            await self._up.send_file(self._stream, f, offset)
        except FileChanged as exc:
            return [(f, exc)]
        return []

    async def _gave_up(self, f: PendingFile, exc: FileChanged) -> bool:
        """Tells the server f changed and rescans it; True once nothing is left to await."""
        await self._stream.send_abort(f.sha256, str(exc))
        for same in self._by_sha.get(f.sha256, []):
            self._close((same.watch_name, same.relative_path))
        await self._up.changed(f)
        if not self._open:
            # Nothing else is awaited: wake the reader so the stream can finish.
            await self._stream.done_writing()
            return True
        return False


def _read_whole_files(sources: Sequence[FileSource]
                      ) -> list[tuple[int, bytes, bool, int] | FileChanged]:
    """Runs in a worker thread: each file's one chunk, or why it can no longer be sent."""
    out: list[tuple[int, bytes, bool, int] | FileChanged] = []
    for source in sources:
        try:
            source.open()  # refuses a file whose size changed since it was queued
            piece = source.next_chunk()
            assert piece is not None  # plan_sends runs only files with 1..chunk bytes left
            out.append(piece)
        except FileChanged as exc:
            out.append(exc)
        finally:
            source.close()
    return out


def _differs_from_queued(f: PendingFile) -> bool:
    """Runs in a worker thread: whether f's source no longer holds the queued content."""
    try:
        st = os.stat(f.source_path)
        if (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns):
            return True
        sha256, _size = sha256_file(f.source_path)
    except OSError:
        return True  # vanished or unreadable: the rescan finds out which
    return sha256 != f.sha256


def _spread(files: Sequence[PendingFile], lanes: int) -> list[list[PendingFile]]:
    """Deals whole units (RAW+JPEG+XMP) to at most `lanes` streams, balancing bytes."""
    units = group_units(files)
    count = max(1, min(lanes, len(units)))
    out: list[list[PendingFile]] = [[] for _ in range(count)]
    load = [0] * count
    for unit in units:
        i = load.index(min(load))
        out[i].extend(unit.files)
        load[i] += sum(f.size for f in unit.files)
    return [lane for lane in out if lane]


def _possession_digest(source: FileSource, reply: FileDecision) -> bytes:
    """SHA-256 of the challenge's nonce and ranges, read from the queued file."""
    source.open()
    try:
        return proof_digest(reply.nonce, reply.ranges, source.read_at)
    finally:
        source.close()
