"""Reconciles watch folders with the index: walks them, hashes only new or changed files, and
judges what vanished. Which entries count is listing.py's job; hashing a file is hasher.py's."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from photonic.agent.beneath import is_inside
from photonic.agent.hasher import CandidateHasher
from photonic.agent.ignore import IgnoreRules
from photonic.agent.listing import Candidate, DirectoryLister, Listing, Skip, candidate_of
from photonic.agent.signature import FileSignature, signature_of
from photonic.agent.statedb import AgentStateDB, FileRecord, WatchStatus
from photonic.media.images import is_structurally_complete
from photonic.models import WatchMode

log = logging.getLogger(__name__)

MAX_REPORTED_SKIPS = 100
_TOUCH_BATCH_ROWS = 1000
_RECORD_BATCH_ROWS = 256
_RECORD_BATCH_BYTES = 64 << 20  # big files reach the uploader without waiting for 256
_GROUP_MAX_FILES = 64
_GROUP_MAX_BYTES = 16 << 20
BUFFER_FULL = "buffer full"


class WatchLike(Protocol):
    """What the scanner needs of a watch config (photonic.config.WatchConfig fits)."""

    @property
    def path(self) -> Path: ...
    @property
    def name(self) -> str: ...
    @property
    def mode(self) -> WatchMode: ...


@dataclass(frozen=True)
class ScanReport:
    watch_name: str
    files_seen: int
    files_hashed: int
    files_queued: int
    bytes_hashed: int
    skipped: tuple[tuple[str, str], ...]  # (rel_path, reason), the first MAX_REPORTED_SKIPS
    missing: bool
    frozen: bool
    files_skipped: int = 0  # all skips, including those beyond the reported list


@dataclass
class _Tally:
    """Counters of one scan; mutated only on the event loop."""

    files_seen: int = 0
    files_hashed: int = 0
    files_queued: int = 0
    bytes_hashed: int = 0
    files_skipped: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # Unchanged files whose index rows this scan did not write: a 5,000-file re-sync with
    # nothing changed writes nothing, and vanished files are the indexed ones not in here.
    seen: set[str] = field(default_factory=set)

    def skip(self, rel_path: str, reason: str) -> None:
        self.files_skipped += 1
        if len(self.skipped) < MAX_REPORTED_SKIPS:
            self.skipped.append((rel_path, reason))


@dataclass
class _RecordSink:
    """Hashed files awaiting one batched commit: one fsync per batch, not one per file."""

    watch_name: str
    tally: _Tally
    flush_rows: int
    records: list[FileRecord] = field(default_factory=list)


@dataclass
class _Probed:
    """What the watcher's settled files came to: candidates to hash, and files skipped."""

    complete: list[Candidate] = field(default_factory=list)
    incomplete: list[Candidate] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def _seen_unchanged(listing: Listing, rel: str, signature: FileSignature,
                    marked_missing: bool) -> None:
    """Only a row marked missing needs a write (it is back); the others are merely seen."""
    if marked_missing:
        listing.unchanged.append((rel, signature))
    else:
        listing.present.append(rel)


def _groups(candidates: list[Candidate], *, ingest: bool) -> Iterator[list[Candidate]]:
    """Small files travel to the hashing thread together: one hop per file costs more than
    hashing a sidecar. Ingest copies go one by one, each reserving its buffer space."""
    max_files = 1 if ingest else _GROUP_MAX_FILES
    group: list[Candidate] = []
    group_bytes = 0
    for candidate in candidates:
        if group and (len(group) >= max_files or group_bytes + candidate.size > _GROUP_MAX_BYTES):
            yield group
            group, group_bytes = [], 0
        group.append(candidate)
        group_bytes += candidate.size
    if group:
        yield group


class Scanner:
    """Reconciles watch folders with the AgentStateDB; knows nothing of the network."""

    def __init__(
        self,
        db: AgentStateDB,
        watches: Sequence[WatchLike],
        ignore: IgnoreRules,
        *,
        buffer_path: Path,
        max_buffer_size_bytes: int,
        hash_concurrency: int = 2,
        freeze_ratio: float = 0.5,
        freeze_min_files: int = 20,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        # Told each time files join the queue, so uploading starts while the scan goes on.
        self._on_queued = on_queued
        self._watches = {w.name: w for w in watches}
        self._lister = DirectoryLister(ignore, os.path.realpath(buffer_path))
        # Not resolved: the uploader recognises ingest copies by this very prefix.
        self._ingest_dir = Path(os.path.abspath(buffer_path)) / "ingest"
        self._hasher = CandidateHasher(self._ingest_dir)
        self._max_buffer_size_bytes = max_buffer_size_bytes
        self._hash_slots = asyncio.Semaphore(hash_concurrency)
        self._freeze_ratio = freeze_ratio
        self._freeze_min_files = freeze_min_files
        self._buffer_committed_bytes: int | None = None
        self._buffer_reserved_bytes = 0
        self._settle_delay_s = 0.0
        self._incomplete_timeout_s = 0.0
        self._on_deferred: Callable[[str, Path], None] | None = None

    def defer_files_in_flight(self, *, settle_delay_s: float, incomplete_timeout_s: float,
                              on_deferred: Callable[[str, Path], None] | None = None) -> None:
        """Makes reconcile scans leave alone files that are still being written: changed less
        than settle_delay_s ago, or structurally incomplete and younger than
        incomplete_timeout_s. Each is handed to on_deferred (the watcher's settle tracker), which
        queues it once it settles: a file written before the watcher started has no event to
        wait for. Without this a scan racing a slow writer would upload half a photo."""
        self._settle_delay_s = settle_delay_s
        self._incomplete_timeout_s = incomplete_timeout_s
        self._on_deferred = on_deferred

    def _in_flight(self, path: str, st: os.stat_result, now_s: float) -> bool:
        if self._settle_delay_s <= 0:
            return False
        age_s = now_s - st.st_mtime
        if age_s < self._settle_delay_s:
            return True
        if age_s >= self._incomplete_timeout_s:
            return False
        try:
            return not is_structurally_complete(Path(path))
        except OSError:
            return False

    async def scan_all(self) -> list[ScanReport]:
        return [await self.scan_watch(w) for w in self._watches.values()]

    async def scan_watch(self, watch: WatchLike) -> ScanReport:
        """One reconcile pass: hash what changed, touch what did not, then judge what vanished."""
        root = os.path.realpath(watch.path)
        if not await asyncio.to_thread(os.path.isdir, root):
            reason = "watch folder does not exist or is not a folder"
            log.warning("watch folder missing", extra={"watch": watch.name, "path": root})
            await asyncio.to_thread(self._db.set_watch_state, watch.name, watch.path,
                                    WatchStatus.MISSING, reason)
            return ScanReport(watch.name, 0, 0, 0, 0, (), missing=True, frozen=False)
        gen = await asyncio.to_thread(self._db.begin_scan, watch.name, watch.path)
        indexed_before = await asyncio.to_thread(self._db.indexed_count, watch.name)
        await self._refresh_buffer_bytes()
        tally = _Tally()
        await self._walk(watch, root, tally)
        frozen = await asyncio.to_thread(self._conclude, watch, gen, indexed_before, tally)
        return ScanReport(
            watch.name, tally.files_seen, tally.files_hashed, tally.files_queued,
            tally.bytes_hashed, tuple(tally.skipped), missing=False, frozen=frozen,
            files_skipped=tally.files_skipped,
        )

    async def scan_path(self, watch_name: str, abs_path: Path, *, incomplete: bool = False,
                        force: bool = False) -> bool:
        """Handles one file (a resend, the uploader's rescan); True if it was queued."""
        return await self.scan_paths(watch_name, [(abs_path, incomplete)], force=force) > 0

    async def scan_paths(self, watch_name: str, paths: Sequence[tuple[Path, bool]], *,
                         force: bool = False) -> int:
        """Handles files of one watch that the watcher saw settle, as (path, incomplete):
        probed in one worker hop, the new or changed ones hashed in groups and recorded in
        batched transactions, as a reconcile scan does. force hashes a file even when its
        signature matches the index (the server found other bytes than were queued). Returns
        how many files were queued."""
        watch = self._watches.get(watch_name)
        if watch is None:
            log.warning("scan_path for unknown watch", extra={"watch": watch_name})
            return 0
        if self._buffer_committed_bytes is None:
            await self._refresh_buffer_bytes()
        probed = await asyncio.to_thread(self._probe_files, watch, paths, force)
        for path, reason in probed.skipped:
            log.info("file not scanned", extra={"watch": watch_name, "path": path,
                                                "reason": reason})
        tally = _Tally()
        ingest = watch.mode == WatchMode.INGEST
        sink = _RecordSink(watch.name, tally, 1 if ingest else _RECORD_BATCH_ROWS)
        in_flight: set[asyncio.Task[None]] = set()
        try:
            for incomplete, candidates in ((False, probed.complete), (True, probed.incomplete)):
                for group in _groups(candidates, ingest=ingest):
                    await self._start_hashing(watch, group, sink, in_flight,
                                              incomplete=incomplete)
            await asyncio.gather(*in_flight)
            await self._flush(sink)
        finally:
            for task in in_flight:  # only left over when cancelled or failed
                task.cancel()
        return tally.files_queued

    async def resend(self, shas: Sequence[str]) -> int:
        """Queues again every file holding one of these contents (the server found its copy
        damaged): each is hashed afresh, so only a file that still holds the content is sent
        as it; one that changed since is sent as the new version it is. Returns how many
        files were queued."""
        files = await asyncio.to_thread(self._db.forget_synced, shas)
        queued = 0
        for watch_name, rel_path in files:
            watch = self._watches.get(watch_name)
            if watch is None:
                continue
            log.warning("server asks to send again", extra={"watch": watch_name,
                                                             "path": rel_path})
            queued += await self.scan_path(watch_name, Path(watch.path) / rel_path, force=True)
        return queued

    # -- walking (directory by directory, each listing in a worker thread) --------------------

    async def _walk(self, watch: WatchLike, root: str, tally: _Tally) -> None:
        stack = [(root, "")]
        in_flight: set[asyncio.Task[None]] = set()
        pending_touch: list[tuple[str, FileSignature]] = []
        # Ingest commits each copy at once: a crash must not orphan a copy in the buffer.
        ingest = watch.mode == WatchMode.INGEST
        sink = _RecordSink(watch.name, tally, 1 if ingest else _RECORD_BATCH_ROWS)
        try:
            while stack:
                dir_abs, dir_rel = stack.pop()
                listing = await asyncio.to_thread(
                    self._list_directory, watch, root, dir_abs, dir_rel
                )
                stack.extend(reversed(listing.subdirs))
                tally.files_seen += listing.files_seen
                if self._on_deferred is not None:
                    for path in listing.in_flight:
                        self._on_deferred(watch.name, Path(path))
                for rel, reason in listing.skipped:
                    tally.skip(rel, reason)
                pending_touch.extend(listing.unchanged)
                tally.seen.update(listing.present)
                if len(pending_touch) >= _TOUCH_BATCH_ROWS:
                    await asyncio.to_thread(
                        self._db.touch_unchanged_many, watch.name, pending_touch
                    )
                    pending_touch = []
                for group in _groups(listing.candidates, ingest=ingest):
                    await self._start_hashing(watch, group, sink, in_flight)
            await asyncio.to_thread(self._db.touch_unchanged_many, watch.name, pending_touch)
            await asyncio.gather(*in_flight)
            await self._flush(sink)
        finally:
            for task in in_flight:  # only left over when the scan is cancelled or failed
                task.cancel()

    async def _flush(self, sink: _RecordSink) -> None:
        records, sink.records = sink.records, []
        if not records:
            return
        queued = await asyncio.to_thread(self._db.record_files, sink.watch_name, records)
        sink.tally.files_queued += sum(queued)
        if any(queued) and self._on_queued is not None:
            self._on_queued()
        if self._buffer_committed_bytes is not None:
            self._buffer_committed_bytes += sum(
                r.size for r, q in zip(records, queued, strict=True)
                if q and is_inside(str(r.source_path), str(self._ingest_dir))
            )

    def _list_directory(self, watch: WatchLike, root: str, dir_abs: str, dir_rel: str) -> Listing:
        listing = self._lister.list_directory(watch.name, root, dir_abs, dir_rel)
        self._sort_by_index(watch, root, listing)
        return listing

    def _sort_by_index(self, watch: WatchLike, root: str, listing: Listing) -> None:
        """Splits the listed files into unchanged and to-be-hashed with one index lookup. A
        row from before ctime was recorded never matches (002_index_ctime.sql), so its file is
        hashed once more."""
        known = self._db.get_index_states(watch.name, [f.rel_path for f in listing.files])
        now_s = time.time()
        for listed in listing.files:
            rel, path, st, _ = listed
            signature = signature_of(st)
            previous, marked_missing = known.get(rel, (None, False))
            if previous == signature:
                _seen_unchanged(listing, rel, signature, marked_missing)
            elif self._in_flight(path, st, now_s):
                # Seen (so never judged missing) but with its old signature kept, so the
                # file is hashed once it has settled.
                listing.in_flight.append(path)
                if previous is not None:
                    _seen_unchanged(listing, rel, previous, marked_missing)
            else:
                listing.candidates.append(candidate_of(root, listed))

    def _probe_files(self, watch: WatchLike, paths: Sequence[tuple[Path, bool]],
                     force: bool) -> _Probed:
        """The watcher's version of _list_directory for the files it names: which of them
        are to be hashed (new, changed, or queued from a copy that vanished), with one index
        lookup and one write for those that are unchanged."""
        root = os.path.realpath(watch.path)
        probed = _Probed()
        listed_files = []
        for abs_path, incomplete in paths:
            try:
                listed = self._lister.probe(root, abs_path)
            except FileNotFoundError:
                continue
            except (Skip, OSError) as exc:
                probed.skipped.append((str(abs_path), str(exc)))
                continue
            if listed is not None:
                listed_files.append((listed, incomplete))
        known = self._db.get_signatures(watch.name, [f[0].rel_path for f in listed_files])
        unchanged: list[tuple[str, FileSignature]] = []
        for listed, incomplete in listed_files:
            signature = signature_of(listed.stat)
            if known.get(listed.rel_path) == signature and not force:
                # A queued copy that vanished (a pruned or lost ingest copy) is made again.
                queued_source = self._db.queued_source(watch.name, listed.rel_path)
                if queued_source is None or queued_source.exists():
                    unchanged.append((listed.rel_path, signature))
                    continue
            target = probed.incomplete if incomplete else probed.complete
            target.append(candidate_of(root, listed))
        self._db.touch_unchanged_many(watch.name, unchanged)
        return probed

    # -- hashing ------------------------------------------------------------------------------

    async def _start_hashing(self, watch: WatchLike, group: list[Candidate], sink: _RecordSink,
                             in_flight: set[asyncio.Task[None]], *,
                             incomplete: bool = False) -> None:
        """Starts hashing a group under a hash slot, acquired before the task is made so at
        most hash_concurrency of them exist."""
        await self._hash_slots.acquire()
        task = asyncio.create_task(self._hash_and_record(watch, group, sink,
                                                         incomplete=incomplete))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    async def _hash_and_record(
        self, watch: WatchLike, group: list[Candidate], sink: _RecordSink, *,
        incomplete: bool = False,
    ) -> None:
        """Runs under one hash slot, which the caller acquired; releases it when done."""
        ingest = watch.mode == WatchMode.INGEST
        reserved = sum(c.size for c in group) if ingest else 0
        try:
            if reserved and not self._reserve_buffer(reserved):
                reserved = 0
                for candidate in group:
                    sink.tally.skip(candidate.rel_path, BUFFER_FULL)
                return
            outcomes = await asyncio.to_thread(self._hasher.hash_group, group, ingest, incomplete)
            for outcome in outcomes:
                if isinstance(outcome, FileRecord):
                    sink.tally.files_hashed += 1
                    sink.tally.bytes_hashed += outcome.size
                    sink.records.append(outcome)
                elif outcome is not None:
                    sink.tally.skip(*outcome)
            batch_bytes = sum(r.size for r in sink.records)
            if len(sink.records) >= sink.flush_rows or batch_bytes >= _RECORD_BATCH_BYTES:
                await self._flush(sink)
        finally:
            self._buffer_reserved_bytes -= reserved
            self._hash_slots.release()

    # -- buffer accounting and verdicts -------------------------------------------------------

    async def _refresh_buffer_bytes(self) -> None:
        self._buffer_committed_bytes = await asyncio.to_thread(
            self._db.queued_bytes_under, self._ingest_dir
        )

    def _reserve_buffer(self, size: int) -> bool:
        committed = self._buffer_committed_bytes or 0
        if committed + self._buffer_reserved_bytes + size > self._max_buffer_size_bytes:
            return False
        self._buffer_reserved_bytes += size
        return True

    def _conclude(self, watch: WatchLike, gen: int, indexed_before: int, tally: _Tally) -> bool:
        """Marks vanished files missing, unless so many vanished that the volume looks unmounted."""
        unseen = self._db.unseen_paths(watch.name, gen, tally.seen)
        present = indexed_before - len(unseen)
        emptied = indexed_before > 0 and tally.files_seen == 0
        mostly_gone = indexed_before >= self._freeze_min_files and present < (
            (1 - self._freeze_ratio) * indexed_before
        )
        if emptied or mostly_gone:
            reason = (f"only {present} of {indexed_before} indexed files are present; "
                      "nothing marked missing until the folder is back")
            log.warning("watch frozen", extra={"watch": watch.name, "reason": reason})
            self._db.set_watch_state(watch.name, watch.path, WatchStatus.FROZEN, reason)
            return True
        self._db.mark_unseen_missing(watch.name, gen, unseen)
        count = self._db.indexed_count(watch.name)
        self._db.set_watch_state(watch.name, watch.path, WatchStatus.OK, file_count=count)
        return False
