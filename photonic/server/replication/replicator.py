"""One backup node's replication loop: offer what it lacks, confirm what it answers.

Each round takes the oldest unconfirmed versions from the queue and runs them through the
agent's own SyncExchange on the node's SyncBatch: a manifest (the primary's library path
mapped by paths.to_node, the version's content, mtime and EXIF summary, and the content of the
version before it as base, so the node numbers versions alike), then the node's decisions
(HAVE: already held; SEND from an offset: resumes a partial; PROVE: answered from the object's
bytes) and the chunks, read from the object store beneath objects/ by the agent's ChunkSender
through the node's token bucket. A version is confirmed (durably, in groups) only on the
node's COMMITTED or HAVE, both sent once the content is durable on the node. The loop wakes
on commits (the event hub), catches up at start, and backs off while the node is away."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from photonic import errors
from photonic.agent.acks import Ack, AckRecorder
from photonic.agent.bandwidth import TokenBucket
from photonic.agent.chunksender import ChunkSender, ChunkSettings
from photonic.agent.client import ServerClient
from photonic.agent.exchange import BatchHeader, SyncExchange
from photonic.agent.statedb import PendingFile
from photonic.logfmt import event
from photonic.models import ConflictPolicy, ContentHash, ExifSummary, ManifestEntry
from photonic.server.replication.metrics import ReplicationMetrics
from photonic.server.replication.nodes import BackupNode, NodeDialer
from photonic.server.replication.paths import to_node
from photonic.server.replication.queue import PendingVersion, ReplicationQueue
from photonic.server.replication.sealed import SEALED_WATCH, IndexEntry, SealedSpool, Spooled
from photonic.server.replication.wakeups import CommitWakeups

log = logging.getLogger("photonic.server.replication")

BATCH_FILES = 200
BATCH_BYTES = 512 * 1024 * 1024
CHUNK_BYTES = 4 * 1024 * 1024
IDLE_RECHECK_S = 60.0
"""Even with no commit seen, the queue is looked at again this often (a wake-up lost to a
crash of this loop, a version committed by another process sharing the catalog)."""
SEALED_BATCH_BYTES = 128 * 1024 * 1024
"""An encrypted node's batch is sealed into the spool before it is sent: this bounds the
spool (plus one file larger than it)."""
INDEX_EVERY_S = 60.0
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
MEASURE_EVERY_S = 1.0


class Replicator:
    """Replicates to one node until stopped; start() and stop() are its whole lifecycle."""

    def __init__(self, node: BackupNode, queue: ReplicationQueue, dialer: NodeDialer,
                 objects_dir: Path, object_file: Callable[[str], str],
                 wakeups: CommitWakeups, metrics: ReplicationMetrics, *,
                 sealer: SealedSpool | None = None,
                 clock: Callable[[], dt.datetime] = dt.datetime.now) -> None:
        self.node = node
        self._sealer = sealer
        """Set for an encrypted node: objects leave sealed under keyed names (sealed.py)."""
        self._index_full = True
        """The whole index goes once per start: what earlier runs sent is not known here."""
        self._index_delta: set[str] = set()
        self._index_sent_at = 0.0
        self.connected = False
        self.last_error = ""
        self._queue = queue
        self._dialer = dialer
        self._object_file = object_file
        self._wake = wakeups
        self._metrics = metrics
        self._clock = clock
        self._sender = ChunkSender(
            ChunkSettings(CHUNK_BYTES, "adaptive", 0.05, Path(os.path.abspath(objects_dir))),
            TokenBucket(node.config.max_bandwidth_bytes_per_s),
            lambda _wire, raw: metrics.bytes_sent.labels(node.name).inc(raw))
        self._skip: set[tuple[int, int]] = set()
        """Versions this run gave up on: refused for good by the node, or whose object this
        server no longer holds (quarantined: repair brings it back, a restart retries it)."""
        self._measured_at = 0.0
        self._task: asyncio.Task[None] | None = None
        metrics.watch(node.name)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"replicate-{self.node.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        failures = 0
        if self._sealer is not None:
            await asyncio.to_thread(self._sealer.clear)  # never trusted across a restart
        while True:
            await self._wait_for_schedule()
            try:
                client = await self._dialer.connect(self.node)
            except (errors.PhotonicError, OSError) as exc:
                failures = await self._failed(failures, exc)
                continue
            event(log, "replication_connected", node=self.node.name,
                  endpoint=self.node.config.endpoint)
            self.connected, self.last_error = True, ""
            try:
                while self._in_schedule():
                    if await self._round(client):
                        failures = 0
            except (errors.PhotonicError, OSError) as exc:
                failures = await self._failed(failures, exc)
            finally:
                await client.close()

    async def _failed(self, failures: int, exc: BaseException) -> int:
        self.connected, self.last_error = False, str(exc) or type(exc).__name__
        await self._measure(force=True)
        delay = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
        event(log, "replication_unavailable", logging.WARNING, node=self.node.name,
              error=str(exc), retry_in_s=delay)
        await asyncio.sleep(delay)
        return failures + 1

    def _in_schedule(self) -> bool:
        now = self._clock()
        return self.node.config.open_at(now.hour * 60 + now.minute)

    async def _wait_for_schedule(self) -> None:
        while not self._in_schedule():
            await asyncio.sleep(60 - self._clock().second)

    async def _round(self, client: ServerClient) -> bool:
        """One batch, or a wait for the next commit when the node holds everything; True
        when the node confirmed something."""
        mark = self._wake.mark()
        items = await asyncio.to_thread(
            self._queue.pending, self.node.name, BATCH_FILES,
            SEALED_BATCH_BYTES if self._sealer else BATCH_BYTES, frozenset(self._skip))
        if not items:
            await self._measure(force=True)
            if self._sealer is not None:
                await self._send_index(client, self._sealer, drained=True)
            await self._wake.wait(mark, IDLE_RECHECK_S)
            return False
        if self._sealer is not None:
            confirmed = await self._sealed_round(client, self._sealer, items)
        else:
            files = await asyncio.to_thread(self._files_of, items)
            if not files:
                return False
            entries = [ManifestEntry(f.sha256, f.size, f.watch_name, f.relative_path, f.exif,
                                     items[f.id].mtime_ns, f.base_sha256, f.incomplete)
                       for f in files]
            confirmed = await self._exchange(client, files, entries,
                                             {f.id: [items[f.id]] for f in files})
        await self._measure()
        return confirmed > 0

    async def _sealed_round(self, client: ServerClient, sealer: SealedSpool,
                            items: Sequence[PendingVersion]) -> int:
        """Versions whose content the node holds already are confirmed at once (their paths
        travel in the index); each other content is sealed into the spool, offered once
        whatever number of versions share it, and the spool emptied after the exchange."""
        held = await asyncio.to_thread(self._queue.held_by, self.node.name,
                                       [i.sha256 for i in items])
        known = [i for i in items if i.sha256 in held]
        if known:
            await asyncio.to_thread(self._queue.confirm, self.node.name, known)
            self._metrics.confirmed.labels(self.node.name).inc(len(known))
            self._note_indexed(known)  # a new path of a held content
        fresh = [i for i in items if i.sha256 not in held]
        confirmed = len(known)
        if fresh:
            files, entries, owners, spooled = await asyncio.to_thread(self._seal, sealer, fresh)
            try:
                if files:
                    confirmed += await self._exchange(client, files, entries, owners)
            finally:
                await asyncio.to_thread(sealer.remove, spooled)
        await self._send_index(client, sealer, drained=False)
        return confirmed

    def _seal(self, sealer: SealedSpool, items: Sequence[PendingVersion]
              ) -> tuple[list[PendingFile], list[ManifestEntry], dict[int, list[PendingVersion]],
                         list[Spooled]]:
        """Blocking: one sealed file per distinct content, as the sender reads queued files."""
        by_sha: dict[str, list[PendingVersion]] = {}
        for item in items:
            by_sha.setdefault(item.sha256, []).append(item)
        files: list[PendingFile] = []
        entries: list[ManifestEntry] = []
        owners: dict[int, list[PendingVersion]] = {}
        spooled: list[Spooled] = []
        for sha, group in by_sha.items():
            try:
                sealed = sealer.seal_object(Path(self._object_file(sha)), sha, group[0].size)
            except FileNotFoundError:
                for item in group:
                    self._give_up(item, "this server does not hold its object (quarantined?)")
                continue
            except errors.IntegrityError as exc:
                for item in group:
                    self._give_up(item, f"not sent: {exc} (the scrub repairs it)")
                continue
            spooled.append(sealed)
            index = len(files)
            owners[index] = group
            files.append(PendingFile(
                id=index, watch_name=SEALED_WATCH, relative_path=sealed.rel,
                source_path=sealed.path, sha256=ContentHash(sealed.sha256), size=sealed.size,
                mtime_ns=sealed.mtime_ns, exif=ExifSummary(), base_sha256="", incomplete=False,
                attempts=0, enqueued_unix_ms=group[0].created_ms))
            entries.append(ManifestEntry(ContentHash(sealed.sha256), sealed.size, SEALED_WATCH,
                                         sealed.rel, ExifSummary(), 0, "", False))
        return files, entries, owners, spooled

    def _note_indexed(self, versions: Sequence[PendingVersion]) -> None:
        """The contents whose paths the next index carries: these versions', and the version
        before each (its file was renamed `name.vN.ext` when this one came)."""
        for v in versions:
            self._index_delta.add(v.sha256)
            if v.base_sha256:
                self._index_delta.add(v.base_sha256)

    async def _send_index(self, client: ServerClient, sealer: SealedSpool, *,
                          drained: bool) -> None:
        """Sends the sealed index of what the node confirmed (all of it once per start, then
        what is new), at most every INDEX_EVERY_S while a backlog drains, at once when it is
        drained; kept for the next round when the node does not take it."""
        if not self._index_full and not self._index_delta:
            return
        if not drained and time.monotonic() - self._index_sent_at < INDEX_EVERY_S:
            return
        taken = set(self._index_delta)
        shas = (await asyncio.to_thread(self._queue.confirmed_contents, self.node.name)
                if self._index_full else sorted(taken))
        if not shas:
            self._index_full = False
            return
        library = await asyncio.to_thread(self._queue.library_of, shas)
        entries = [IndexEntry(sealer.name_of(sha), sha, size, tuple(paths))
                   for sha, (size, paths) in sorted(library.items())]
        spooled = await asyncio.to_thread(sealer.seal_index, entries, self.node.identity)
        file = PendingFile(id=0, watch_name=SEALED_WATCH, relative_path=spooled.rel,
                           source_path=spooled.path, sha256=ContentHash(spooled.sha256),
                           size=spooled.size, mtime_ns=spooled.mtime_ns, exif=ExifSummary(),
                           base_sha256="", incomplete=False, attempts=0, enqueued_unix_ms=0)
        entry = ManifestEntry(file.sha256, file.size, SEALED_WATCH, spooled.rel, ExifSummary(),
                              0, "", False)
        acked: list[Ack] = []
        header = BatchHeader(uuid.uuid4().hex, self.node.identity, ConflictPolicy.AUTO)
        try:
            report = await SyncExchange(client.open_sync(), header, [file], [entry],
                                        sender=self._sender, on_ack=acked.append).run()
        finally:
            await asyncio.to_thread(sealer.remove, [spooled])
        self._index_sent_at = time.monotonic()
        if not acked:
            event(log, "replication_index_not_taken", logging.WARNING, node=self.node.name,
                  reasons="; ".join(f.reason for f in report.failed))
            return
        self._index_full = False
        self._index_delta -= taken
        event(log, "replication_index_sent", node=self.node.name, objects=len(entries),
              bytes=spooled.size)

    def _files_of(self, items: Sequence[PendingVersion]) -> list[PendingFile]:
        """The objects to send, as the agent's sender reads queued files (size and mtime of
        the object now; FileSource refuses it if either moves). Index i is items[i]."""
        files: list[PendingFile] = []
        for index, item in enumerate(items):
            path = self._object_file(item.sha256)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                self._give_up(item, "this server does not hold its object (quarantined?)")
                continue
            watch, rel = to_node(item.name)
            files.append(PendingFile(
                id=index, watch_name=watch, relative_path=rel, source_path=Path(path),
                sha256=item.sha256, size=st.st_size, mtime_ns=st.st_mtime_ns, exif=item.exif,
                base_sha256=item.base_sha256, incomplete=item.incomplete, attempts=0,
                enqueued_unix_ms=item.created_ms))
        return files

    def _give_up(self, item: PendingVersion, why: str) -> None:
        self._skip.add((item.location_id, item.version))
        event(log, "replication_skipped", logging.ERROR, node=self.node.name,
              sha256=item.sha256[:16], path=f"{item.name.agent_id}/{item.name.watch_name}/"
              f"{item.name.rel_path}", reason=why)

    async def _exchange(self, client: ServerClient, files: Sequence[PendingFile],
                        entries: Sequence[ManifestEntry],
                        owners: Mapping[int, Sequence[PendingVersion]]) -> int:
        """One SyncBatch of files (entries: their manifest lines); owners: the versions each
        file carries, confirmed when the node acknowledges it."""
        confirmed = 0

        async def record(group: list[Ack]) -> None:
            nonlocal confirmed
            versions = [v for a in group for v in owners[a.file.id]]
            await asyncio.to_thread(self._queue.confirm, self.node.name, versions)
            confirmed += len(versions)
            self._metrics.confirmed.labels(self.node.name).inc(len(versions))
            if self._sealer is not None:
                self._note_indexed(versions)

        recorder = AckRecorder(record)
        header = BatchHeader(uuid.uuid4().hex, self.node.identity, ConflictPolicy.AUTO)
        started = time.monotonic()
        exchange = SyncExchange(client.open_sync(), header, list(files), list(entries),
                                sender=self._sender, on_ack=recorder.add)
        try:
            report = await exchange.run()
        finally:
            await recorder.flush()
        for failure in report.failed:
            if failure.permanent:
                for item in owners[failure.file.id]:
                    self._give_up(item, failure.reason)
        for changed in report.changed:
            for item in owners[changed.id]:
                self._give_up(item, "its object changed or vanished while sent")
        event(log, "replication_batch", node=self.node.name, offered=len(files),
              confirmed=confirmed, failed=len(report.failed),
              seconds=round(time.monotonic() - started, 3))
        return confirmed

    async def _measure(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._measured_at < MEASURE_EVERY_S:
            return
        self._measured_at = now
        backlog = await asyncio.to_thread(self._queue.backlog, self.node.name)
        self._metrics.measured(self.node.name, backlog)
