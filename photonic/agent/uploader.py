"""Drains the agent's durable queue to the server: plans batches by shoot, streams files over
parallel SyncBatch streams, and releases a queue entry only on COMMITTED or HAVE."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from photonic import errors
from photonic.agent.acks import Ack, AckRecorder
from photonic.agent.bandwidth import TokenBucket
from photonic.agent.batcher import AdaptiveBatchSize, group_units, plan_batches
from photonic.agent.chunksender import ChunkSender, ChunkSettings
from photonic.agent.exchange import BatchHeader, ExchangeReport, FileFailure, SyncExchange
from photonic.agent.metrics import AgentMetrics
from photonic.agent.statedb import AgentStateDB, PendingFile
from photonic.agent.sync_api import BatchOpener
from photonic.logfmt import event
from photonic.media.hashing import sha256_file
from photonic.models import ConflictPolicy, ManifestEntry

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
    """Drains the queue over one connection at a time (drain(client)); owns the lanes, the
    batch sizing, the acknowledgements' group commit and the recording of failures."""

    def __init__(self, db: AgentStateDB, settings: UploaderSettings, bucket: TokenBucket,
                 metrics: AgentMetrics, rescan: Rescan) -> None:
        self._db = db
        self._s = settings
        self._metrics = metrics
        self._rescan = rescan
        self._batch_size = AdaptiveBatchSize()
        self._lanes = settings.parallel_transfers
        self._acks = AckRecorder(self._record_acks)
        self._ingest_dir = settings.buffer_path / "ingest"
        self.sender = ChunkSender(ChunkSettings(
            settings.chunk_size_bytes, settings.compression, settings.compression_min_saving,
            self._ingest_dir), bucket, self._count_sent)
        self.totals = SyncTotals()

    async def drain(self, client: BatchOpener) -> SyncTotals:
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

    async def _send_batches(self, client: BatchOpener,
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

    async def _stream(self, client: BatchOpener, files: Sequence[PendingFile]) -> None:
        """One SyncBatch call for files; its per-file outcomes are recorded however it ends,
        and a failure of the call itself is raised as it came."""
        header = BatchHeader(uuid.uuid4().hex[:16], self._s.agent_id, self._s.conflict_policy)
        entries = await self._manifest_entries(files)
        stream = client.open_sync(header.batch_id)
        exchange = SyncExchange(stream, header, files, entries, sender=self.sender,
                                on_ack=self._acks.add)
        try:
            await exchange.run()
        finally:
            stream.cancel()
            await self._settle(exchange.report)

    async def _manifest_entries(self, files: Sequence[PendingFile]) -> list[ManifestEntry]:
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
        ingest = self._ingest_dir
        for a in acks:
            f = a.file
            if (f.source_path.is_relative_to(ingest)
                    and not self._db.source_in_use(f.source_path)):
                f.source_path.unlink(missing_ok=True)

    async def _settle(self, report: ExchangeReport) -> None:
        """Records what one call did not deliver: changed files are hashed again, failed
        ones count an attempt (or, refused for good, wait for a change)."""
        for f in report.changed:
            await self._changed(f)
        for failure in report.failed:
            await self._failed(failure)

    async def _failed(self, failure: FileFailure) -> None:
        f, reason, permanent = failure.file, failure.reason, failure.permanent
        # The server refused bytes that are no longer what was queued (a rewrite that kept
        # size and mtime is seen only by the server's SHA-256): queue them anew. If the
        # rescan finds nothing to queue, this counts as a failed attempt.
        if (not permanent and await asyncio.to_thread(_differs_from_queued, f)
                and await self._changed(f)):
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

    def _count_sent(self, wire_bytes: int, raw_bytes: int) -> None:
        self.totals.bytes_sent += wire_bytes
        self.totals.raw_bytes_sent += raw_bytes
        self._metrics.bytes_sent.inc(wire_bytes)
        self._metrics.raw_bytes_sent.inc(raw_bytes)

    async def _changed(self, f: PendingFile) -> bool:
        """Hashes f again and queues what it holds now; True if it was queued or dropped."""
        self.totals.files_changed += 1
        event(log, "file_changed_during_upload", agent=self._s.agent_id, path=f.relative_path)
        return await self._rescan(f)


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
