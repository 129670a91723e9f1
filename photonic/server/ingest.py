"""One SyncBatch stream on the server: answers a manifest, receives chunks, and acknowledges a
file only after its content is verified, fsynced, in the store and in the catalog."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TypeVar

from photonic import errors
from photonic.grpc_options import MAX_CHUNK_BYTES, MAX_CHUNKS_PER_RUN
from photonic.logfmt import event
from photonic.media.possession import new_challenge, proof_digest, proofs_match
from photonic.models import (
    ChunkData,
    CommittedFile,
    ConflictPolicy,
    Decision,
    FailedFile,
    FileDecision,
    ManifestEntry,
    PossessionProof,
    is_content_hash,
)
from photonic.paths import safe_name, safe_relative_path
from photonic.server import faults
from photonic.server.catalog import ObjectCheckRow
from photonic.server.content_writer import ContentWriter, Incoming
from photonic.server.events import ServerEvent
from photonic.server.ingest_deps import (
    MAX_MANIFEST_ENTRIES,
    IngestDeps,
    Placed,
    check_manifest_size,
)
from photonic.server.storage.blobs import BlobUpload
from photonic.server.store import as_storage_full
from photonic.server.sync_audit import SyncTally
from photonic.server.verification import TrustReport

log = logging.getLogger("photonic.server.ingest")
T = TypeVar("T")

Outgoing = FileDecision | CommittedFile | FailedFile
# Files of one stream committing at once while the stream already receives the next ones:
# the fsyncs of several files overlap instead of queueing behind each other.
MAX_COMMITS_IN_FLIGHT = 8


@dataclass
class _Challenge:
    """A PROVE sent for one content, and every path of this stream waiting on its proof."""

    nonce: bytes
    ranges: tuple[tuple[int, int], ...]
    paths: Placed


class IngestSession:
    def __init__(self, agent_id: str, deps: IngestDeps,
                 send: Callable[[Outgoing], Awaitable[None]], *,
                 on_broken: Callable[[errors.PhotonicError], None] = lambda _exc: None) -> None:
        """on_broken is told at once when a background commit fails: the photos in it are
        never answered, so the stream must end now rather than wait for the agent."""
        self._agent = agent_id
        self._d = deps
        self._send = send
        self._on_broken = on_broken
        self._policy = ConflictPolicy.AUTO
        self._incoming: dict[str, Incoming] = {}
        self._waiters: set[asyncio.Task[None]] = set()
        self._commits: set[asyncio.Task[None]] = set()
        self._commit_slots = asyncio.Semaphore(MAX_COMMITS_IN_FLIGHT)
        self._commit_errors: list[errors.PhotonicError] = []
        self._settling: set[asyncio.Future[bool]] = set()
        self._writer = ContentWriter(deps)
        self._challenges: dict[str, _Challenge] = {}
        self.tally = SyncTally()
        """What this stream made durable, for its one audit row (sync_audit.py)."""

    @property
    def working(self) -> bool:
        """Whether the server owes this stream's client answers it is working on now (commits
        in flight, content awaited from another stream): the client may well be silent."""
        return bool(self._commits or self._waiters)

    async def on_manifest(self, entries: list[ManifestEntry], policy: ConflictPolicy) -> None:
        check_manifest_size(len(entries))
        self._policy = policy
        offered: Placed = []
        watches: set[str] = set()  # a manifest names a watch or two a thousand times
        for entry in entries:
            try:
                offered.append((entry, self._validate(entry, watches)))
            except errors.InvalidInput as exc:
                await self._reject(entry, str(exc))
        await self._decide(offered)

    def _validate(self, entry: ManifestEntry, valid_watches: set[str]) -> PurePosixPath:
        if not is_content_hash(entry.sha256):
            raise errors.InvalidInput(f"{entry.sha256!r} is not a lowercase SHA-256 hex digest")
        if entry.watch_name not in valid_watches:
            safe_name(entry.watch_name, "watch name")
            valid_watches.add(entry.watch_name)
        rel = safe_relative_path(entry.relative_path)
        if entry.size > self._d.limits.max_transfer_size_bytes:
            raise errors.InvalidInput(
                f"{entry.size} bytes is over the server's max_transfer_size "
                f"({self._d.limits.max_transfer_size_bytes})")
        return rel

    async def _decide(self, offered: Placed) -> None:
        """HAVE for what the server holds intact and this agent held before (all recorded
        with one sync), PROVE for what it holds but this agent never did, SEND for the rest,
        one upload per content however many paths share it."""
        if not offered:
            return
        # Content another stream is still committing may already be in objects/ without
        # being durable: it is decided once that stream is done, never answered HAVE now.
        held: set[str] = {entry.sha256 for entry, _rel in offered
                          if self._d.claims.held(entry.sha256)}
        stored, offsets, free, trust, owned = await asyncio.to_thread(self._look_up, offered,
                                                                      held)
        await self._report_quarantined(trust)
        have = [placed for placed, known in zip(offered, stored, strict=True) if known]
        # Content this agent never held is answered HAVE only once it proves it holds the
        # bytes: knowing a photo's SHA-256 must not be enough to get it into one's library.
        to_prove = [placed for placed in have if placed[0].sha256 not in owned]
        have = [placed for placed in have if placed[0].sha256 in owned]
        if have:
            await self._answer_have(have)
        if to_prove:
            await self._challenge(to_prove)
        wanted: dict[str, Incoming] = {}
        for (entry, rel), known in zip(offered, stored, strict=True):
            if known:
                continue
            # Content already on its way (this stream's, or awaited from another) serves
            # this path too when it commits.
            joined = self._incoming.get(entry.sha256) or wanted.get(entry.sha256)
            if joined is not None:
                joined.paths.append((entry, rel))
            else:
                wanted[entry.sha256] = Incoming(entry.sha256, entry.size, [(entry, rel)],
                                                 repair=entry.sha256 in trust.unrepaired)
        for sha in await self._d.claims.try_claim_many(list(wanted)):
            wanted[sha].claimed = True
            # Registered at once: if this stream ends during an await below, close() finds
            # the content and releases its claim (else it is held for good, and every later
            # stream offered it waits on it forever).
            self._incoming[sha] = wanted[sha]
        for incoming in wanted.values():
            if incoming.claimed:
                partial_bytes = offsets.get(incoming.sha256)
                if partial_bytes is None:  # held, but another stream held its claim (rare)
                    partial_bytes = await asyncio.to_thread(self._d.blobs.partial_offset,
                                                            incoming.sha256)
                await self._start_upload(incoming, partial_bytes, free)
            else:
                # Another stream is writing this content: decide once it has finished.
                self._incoming[incoming.sha256] = incoming
                task = asyncio.create_task(self._decide_after_other_stream(incoming))
                self._waiters.add(task)
                task.add_done_callback(self._waiter_done)

    def _look_up(self, offered: Placed, held: set[str]
                 ) -> tuple[list[bool], dict[str, int], int, TrustReport, set[str]]:
        """Runs in a worker thread, one hop for a whole manifest and no file system call on
        the event loop: whether the server holds each entry intact (ObjectVerifier: a HAVE is
        never answered for damaged bytes), how much of each other content a parked upload
        already holds, the free space, and which stored contents this agent already holds
        at a path of its own (no proof of possession needed). Content in `held` is being
        written by another stream: it is not looked at now."""
        wanted: dict[str, int] = {entry.sha256: entry.size for entry, _rel in offered
                                  if entry.sha256 not in held}
        trust = self._d.verifier.trusted(wanted)
        self._d.metrics.objects_rehashed.inc(trust.rehashed)
        for sha in trust.unrepaired & trust.trusted:  # stored again since, by another stream
            self._d.library.repair_links(sha)
        offsets: dict[str, int] = {}
        out = []
        for entry, _rel in offered:
            known = entry.sha256 in trust.trusted
            if known and not self._d.limits.deduplication:
                head = self._d.catalog.get_head(self._agent, entry.watch_name,
                                                entry.relative_path)
                known = head is not None and head.head_sha256 == entry.sha256
            if not known and entry.sha256 not in offsets and entry.sha256 not in held:
                offsets[entry.sha256] = self._d.blobs.partial_offset(entry.sha256)
            out.append(known)
        owned = (self._d.catalog.held_by(self._agent, list(trust.trusted)) if trust.trusted
                 else set())
        return out, offsets, self._d.blobs.free_bytes(), trust, owned

    async def _report_quarantined(self, trust: TrustReport) -> None:
        """Damaged objects found while deciding: counted, audited, and told to watchers; the
        upload the agent is now asked for repairs the store."""
        for sha256, reason in trust.quarantined:
            self._d.metrics.objects_quarantined.inc()
            await self._d.audit(self._agent, "store.quarantine", sha256, "quarantined", reason)
            self._d.events.publish(ServerEvent(
                kind="object_quarantined", agent_id=self._agent, sha256=sha256,
                watch_name="", relative_path="", detail=reason, size=0))

    async def _answer_have(self, have: Placed) -> None:
        recorded = await self._record(have)
        dedup_hits = self._d.metrics.dedup_hits.labels(self._agent)
        deduplicated = self._d.metrics.photos_processed.labels(self._agent, "deduplicated")
        for (entry, _rel), committed in zip(have, recorded, strict=True):
            if isinstance(committed, errors.Unstorable):
                await self._reject(entry, str(committed))
                continue
            dedup_hits.inc()
            self.tally.deduplicated_one()
            deduplicated.inc()
            self._publish("file_deduplicated", entry)
            await self._send(FileDecision(
                sha256=entry.sha256, watch_name=entry.watch_name,
                relative_path=entry.relative_path, action=Decision.HAVE,
                version=committed.version, conflict=committed.conflict))

    async def _challenge(self, placed: Placed) -> None:
        """PROVE for each path: one challenge per content, answered for all its paths by the
        first proof that matches."""
        for entry, rel in placed:
            pending = self._challenges.get(entry.sha256)
            if pending is None:
                if len(self._challenges) >= MAX_MANIFEST_ENTRIES:
                    raise errors.InvalidInput(
                        f"more than {MAX_MANIFEST_ENTRIES} proofs of possession unanswered")
                nonce, ranges = new_challenge(entry.size)
                pending = self._challenges[entry.sha256] = _Challenge(nonce, ranges, [])
            pending.paths.append((entry, rel))
            await self._send(FileDecision(
                sha256=entry.sha256, watch_name=entry.watch_name,
                relative_path=entry.relative_path, action=Decision.PROVE,
                nonce=pending.nonce, ranges=pending.ranges))

    async def on_proof(self, proof: PossessionProof) -> None:
        """The agent's answer to PROVE: HAVE for every path waiting on it when the digest
        matches the stored bytes, REJECT (audited) when it does not. A proof nobody asked for
        (a repeat for another path of the same content) is ignored."""
        pending = self._challenges.get(proof.sha256)
        if pending is None or not proofs_match(pending.nonce, proof.nonce):
            return
        del self._challenges[proof.sha256]
        expected = await asyncio.to_thread(self._expected_proof, proof.sha256, pending)
        if expected is None:  # the object went away meanwhile (quarantined): decide afresh
            await self._decide(pending.paths)
        elif proofs_match(expected, proof.digest):
            await self._answer_have(pending.paths)
        else:
            await self._d.audit(self._agent, "sync.proof", proof.sha256, "refused",
                                "proof of possession did not match the stored bytes")
            for entry, _rel in pending.paths:
                await self._reject(entry, "the proof of holding this photo did not match its "
                                          "bytes; the photo was not linked")

    def _expected_proof(self, sha256: str, pending: _Challenge) -> bytes | None:
        try:
            reader = self._d.blobs.open(sha256)
        except errors.NotFound:
            return None
        try:
            return proof_digest(pending.nonce, pending.ranges, reader.read_at)
        except ValueError:  # shorter than the ranges: damaged; the next look re-hashes it
            return None
        finally:
            reader.close()

    def _waiter_done(self, task: asyncio.Task[None]) -> None:
        """A decision taken after another stream's claim that failed (a full disk, the shared
        claims' database away) breaks the stream as a failed commit does: else the agent
        would wait for an answer to those files that never comes."""
        self._waiters.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._on_broken(self._stream_error(exc))

    async def _decide_after_other_stream(self, incoming: Incoming) -> None:
        await self._d.claims.wait_released(incoming.sha256)
        self._incoming.pop(incoming.sha256, None)
        await self._decide(incoming.paths)

    async def _start_upload(self, incoming: Incoming, partial_bytes: int, free: int) -> None:
        """partial_bytes and free were measured before the claim was taken: if another
        stream changed the partial since, opening it notices and the file is offered again."""
        sha = incoming.sha256
        self._incoming[sha] = incoming
        try:
            # A partial longer than the content cannot be ours: it is discarded when opened.
            incoming.offset = partial_bytes if partial_bytes <= incoming.size else 0
            self._ensure_room(free, incoming.size - incoming.offset)
        except BaseException:
            self._forget(sha)
            raise
        entry = incoming.paths[0][0]
        await self._send(FileDecision(sha256=sha, watch_name=entry.watch_name,
                                      relative_path=entry.relative_path,
                                      action=Decision.SEND, offset=incoming.offset))
        if incoming.offset == incoming.size:
            await self._finish_soon([incoming])

    def _ensure_room(self, free: int, needed: int) -> None:
        self._d.metrics.storage_free_bytes.set(free)
        if free - max(needed, 0) < self._d.limits.min_free_bytes:
            self._d.metrics.storage_full.set(1)
            raise errors.StorageFull(
                f"server storage is full: {free} bytes free, {needed} needed plus a reserve of "
                f"{self._d.limits.min_free_bytes}; intake resumes when space is freed")
        self._d.metrics.storage_full.set(0)

    async def on_chunks(self, chunks: Sequence[ChunkData]) -> None:
        """The chunks of one message, checked here, written in one worker hop; the files
        they complete are committed together. A file that fails loses only itself."""
        if len(chunks) > MAX_CHUNKS_PER_RUN:
            raise errors.InvalidInput(
                f"a message may carry at most {MAX_CHUNKS_PER_RUN} chunks, not {len(chunks)}")
        if sum(c.raw_size for c in chunks) > MAX_CHUNK_BYTES:
            raise errors.InvalidInput(f"the chunks of one message may add up to at most "
                                      f"{MAX_CHUNK_BYTES} bytes")
        accepted: list[tuple[Incoming, ChunkData]] = []
        ends: dict[str, int] = {}  # where each file's chunks accepted so far end
        failed: set[str] = set()  # files this message already failed: their later chunks too
        for chunk in chunks:
            if chunk.sha256 in failed:
                continue
            incoming = self._incoming.get(chunk.sha256)
            if incoming is None or not incoming.claimed:
                raise errors.InvalidInput(
                    f"chunk for {chunk.sha256[:12]}, which was not requested")
            problem = self._chunk_problem(chunk, ends.get(chunk.sha256, incoming.offset),
                                          incoming.size)
            if problem:
                accepted = [(i, c) for i, c in accepted if i is not incoming]
                failed.add(chunk.sha256)
                await self._fail(incoming, problem, retryable=True)
                continue
            ends[chunk.sha256] = chunk.offset + chunk.raw_size
            accepted.append((incoming, chunk))
            self._d.metrics.bytes_received.labels(self._agent).inc(len(chunk.data))
        if not accepted:
            return
        try:
            written = await self._in_worker([i for i, _c in accepted], self._writer.write_chunks,
                                            accepted)
        except (errors.StorageFull, OSError) as exc:
            # The disk refused a write: whatever else was written meanwhile may be lost too,
            # so no partial written since is parked for a resume (see _settle).
            self._d.library.durability.note_failure()
            if isinstance(exc, errors.StorageFull):
                self._d.metrics.storage_full.set(1)
            for incoming, _chunk in accepted:
                self._forget(incoming.sha256)
            raise
        complete: list[Incoming] = []
        for incoming, outcome in written.items():
            if isinstance(outcome, str):
                await self._fail(incoming, outcome, retryable=True)
                continue
            incoming.offset = outcome
            if outcome == incoming.size:
                complete.append(incoming)
        if complete:
            await self._finish_soon(complete)

    @staticmethod
    def _chunk_problem(chunk: ChunkData, expected_offset: int, size: int) -> str:
        if chunk.offset != expected_offset:
            return f"chunk at offset {chunk.offset}, expected {expected_offset}"
        if chunk.raw_size > MAX_CHUNK_BYTES:
            return f"chunk of {chunk.raw_size} bytes is over the limit of {MAX_CHUNK_BYTES}"
        if chunk.offset + chunk.raw_size > size:
            return f"chunk ends at {chunk.offset + chunk.raw_size}, past the declared size"
        if chunk.raw_size == 0:
            return "empty chunk"
        return ""

    async def _finish_soon(self, incoming: list[Incoming]) -> None:
        """Commits in the background (bounded), so the stream keeps receiving meanwhile."""
        for complete in incoming:
            complete.committing = True
        await self._commit_slots.acquire()
        task = asyncio.create_task(self._finish(incoming))
        self._commits.add(task)
        task.add_done_callback(self._commit_done)

    def _commit_done(self, task: asyncio.Task[None]) -> None:
        self._commits.discard(task)
        self._commit_slots.release()
        if task.cancelled() or (exc := task.exception()) is None:
            return
        failure = self._stream_error(exc)
        self._commit_errors.append(failure)
        self._on_broken(failure)

    def _stream_error(self, exc: BaseException) -> errors.PhotonicError:
        """What a failed commit tells the agent; nothing in it was acknowledged."""
        if isinstance(exc, errors.PhotonicError):
            return exc
        if (full := as_storage_full(exc)) is not None:
            self._d.metrics.storage_full.set(1)
            return full
        correlation = uuid.uuid4().hex[:16]
        event(log, "commit_failed", logging.ERROR, agent=self._agent,
              correlation_id=correlation, error=f"{type(exc).__name__}: {exc}")
        return errors.Transient(f"the server could not commit a photo (correlation id "
                                f"{correlation}; its log has the details); it will be sent "
                                "again")

    async def flush(self) -> None:
        """Waits for every commit in flight; re-raises the first failure (e.g. a full disk)."""
        while self._commits:
            await asyncio.gather(*list(self._commits), return_exceptions=True)
        if self._commit_errors:
            raise self._commit_errors[0]

    async def _finish(self, complete: list[Incoming]) -> None:
        """Stores every complete file (one worker hop), then records all their paths with
        one group sync before any of them is acknowledged."""
        problems = await self._in_worker(complete, self._writer.store_contents, complete)
        stored: list[Incoming] = []
        for incoming, problem in zip(complete, problems, strict=True):
            if problem is not None:
                self._d.metrics.integrity_failures.labels(self._agent).inc()
                await self._fail(incoming, str(problem), retryable=True)
            else:
                self._d.metrics.bytes_stored.labels(self._agent).inc(incoming.size)
                self.tally.stored(incoming.size)
                stored.append(incoming)
        try:
            # Paths may join while earlier ones are recorded; all are served before forgetting.
            checks: dict[str, ObjectCheckRow] = {i.sha256: i.check for i in stored
                                                 if i.check is not None}
            while batch := [placed for incoming in stored for placed in incoming.paths]:
                for incoming in stored:
                    incoming.paths = []
                recorded = await self._record(batch, checks)
                checks = {}  # recorded with the first batch
                faults.hit("after_catalog_commit")
                for (entry, _rel), committed in zip(batch, recorded, strict=True):
                    if isinstance(committed, errors.Unstorable):
                        await self._reject(entry, str(committed))
                        continue
                    self._d.metrics.photos_processed.labels(self._agent, "stored").inc()
                    self.tally.committed()
                    self._publish("file_committed", entry, committed.library_path)
                    event(log, "file_committed", agent=self._agent, path=entry.relative_path,
                          watch=entry.watch_name, sha256=entry.sha256[:16], size=entry.size,
                          version=committed.version, conflict=committed.conflict)
                    await self._send(committed)
        finally:
            for incoming in stored:
                self._forget(incoming.sha256)

    async def _record(self, placed: Placed, checks: dict[str, ObjectCheckRow] | None = None
                      ) -> list[CommittedFile | errors.Unstorable]:
        recorded = await asyncio.to_thread(self._d.library.record_many, self._agent, placed,
                                           self._policy, checks)
        for (entry, _rel), committed in zip(placed, recorded, strict=True):
            if isinstance(committed, CommittedFile) and committed.conflict:
                self._d.metrics.photos_processed.labels(self._agent, "conflict").inc()
                self._publish("conflict", entry, self._policy.value)
        return recorded

    async def on_abort(self, sha256: str, reason: str) -> bool:
        """The agent gave up on a file; the partial stays on disk for a later resume. True
        when the content was dropped; an abort of content whose last byte is in (its commit
        runs) changes nothing: the commit goes on and answers as it would have."""
        incoming = self._incoming.get(sha256)
        if incoming is None or incoming.committing:
            return False
        event(log, "upload_aborted", agent=self._agent, sha256=sha256[:16], reason=reason)
        self._forget(sha256)
        return True

    async def _fail(self, incoming: Incoming, reason: str, *, retryable: bool) -> None:
        self._forget(incoming.sha256)
        self._d.metrics.photos_processed.labels(self._agent, "failed").inc(len(incoming.paths))
        event(log, "upload_failed", logging.WARNING, agent=self._agent,
              sha256=incoming.sha256[:16], reason=reason)
        await self._send(FailedFile(incoming.sha256, reason, retryable))

    async def _reject(self, entry: ManifestEntry, reason: str) -> None:
        self._d.metrics.photos_processed.labels(self._agent, "rejected").inc()
        self._publish("file_rejected", entry, reason)
        await self._d.audit(self._agent, "sync.reject", f"{entry.watch_name}/"
                            f"{entry.relative_path!r}", "refused", reason)
        await self._send(FileDecision(sha256=entry.sha256, watch_name=entry.watch_name,
                                      relative_path=entry.relative_path,
                                      action=Decision.REJECT, reason=reason))

    def _publish(self, kind: str, entry: ManifestEntry, detail: str = "") -> None:
        self._d.events.publish(ServerEvent(
            kind=kind, agent_id=self._agent, sha256=entry.sha256, watch_name=entry.watch_name,
            relative_path=entry.relative_path, detail=detail, size=entry.size))

    def _forget(self, sha256: str) -> None:
        """Stops serving this content on this stream. Its upload claim is released only once
        no worker thread works on it any more, and after its partial file is parked for a
        resume (or dropped): a thread cannot be cancelled, and a claim released while one
        still writes, renames or links would let another stream work on the same files at
        the same time."""
        incoming = self._incoming.pop(sha256, None)
        if incoming is None:
            return
        incoming.retired = True
        if incoming.busy == 0:
            self._settle(incoming)

    def _settle(self, incoming: Incoming) -> None:
        upload = incoming.upload
        if upload is None or upload.closed:
            self._release(incoming)
            return
        # The executor's own future, not a task: a task cancelled before its first step never
        # runs its body (nor a `finally` that releases the claim), and a stream's cleanup can
        # be cancelled at any await. The claim is released by the future's callback, which
        # runs however the future ends, and only once the thread is done with the files.
        keep = not self._d.library.durability.failed_since(incoming.mark)
        settling = asyncio.get_running_loop().run_in_executor(None, _park_or_discard, upload,
                                                               keep)

        def settled(done: asyncio.Future[bool]) -> None:
            try:
                if not done.cancelled():  # cancelled before it ran: the partial is left
                    failed = done.exception() is not None or not done.result()
                    if keep and failed:  # bytes we meant to keep may not be on the disk
                        self._d.library.durability.note_failure()
            finally:
                self._release(incoming)

        self._settling.add(settling)
        settling.add_done_callback(self._settling.discard)
        settling.add_done_callback(settled)

    def _release(self, incoming: Incoming) -> None:
        if incoming.claimed:
            incoming.claimed = False
            self._d.claims.release(incoming.sha256)

    async def _in_worker(self, working_on: Iterable[Incoming], work: Callable[..., T],
                         *args: object) -> T:
        """Runs work in a worker thread, counting it against each content it works on (see
        _forget). If this coroutine is cancelled, the thread runs on to its end all the same,
        and the contents are settled then."""
        held = list(working_on)
        for incoming in held:
            incoming.busy += 1
        # The executor's own future, not a task around asyncio.to_thread: one object fewer
        # per photo on the event loop. The shield keeps a cancellation of this coroutine from
        # reaching it, so `returned` runs when the thread returns, not before.
        context = contextvars.copy_context()
        running: asyncio.Future[T] = asyncio.get_running_loop().run_in_executor(
            None, functools.partial(context.run, work, *args))

        def returned(done: asyncio.Future[T]) -> None:
            if not done.cancelled():
                done.exception()  # retrieved here: the awaiting side may be gone
            for incoming in held:
                incoming.busy -= 1
                if incoming.busy == 0 and incoming.retired:
                    self._settle(incoming)

        running.add_done_callback(returned)
        return await asyncio.shield(running)

    async def close(self) -> None:
        """Ends the stream's work. Commits in flight are cancelled (nothing was acknowledged,
        every step is idempotent); their worker threads finish on their own, and each content's
        claim is released only then. Waits for the partials that can be parked now."""
        for task in [*self._waiters, *self._commits]:
            task.cancel()
        for sha in list(self._incoming):
            self._forget(sha)
        while self._settling:
            # asyncio.wait, not gather: a cancelled close must not cancel the parking.
            await asyncio.wait(list(self._settling))


def _park_or_discard(upload: BlobUpload, keep: bool) -> bool:
    """Runs in a worker thread: keeps the bytes received so far for a resume, fsynced (False
    when they could not be made durable, and are discarded), or drops them when a sync failed
    since they began to arrive (they may be lost whatever the page cache shows)."""
    if keep:
        return upload.park()
    upload.discard()
    return True
