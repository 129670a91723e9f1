"""One SyncBatch call from the agent's side: manifest out, replies in, chunks out.

The exchange is given every value it needs (the manifest, the batch's header, a chunk
sender, where acknowledgements go) and reads nothing of its caller. Acknowledgements go at
once to the durable AckRecorder (their group commit overlaps the stream); every other per-file
outcome (refused, failed, changed while it was read) is collected in the exchange's report,
which the caller settles once the call is over, however it ended. A failure of the call itself
is raised as the photonic.errors exception the client translated it to, and nothing else."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from photonic import errors
from photonic.agent.acks import Ack
from photonic.agent.chunksender import ChunkSender
from photonic.agent.filesource import FileChanged
from photonic.agent.statedb import PendingFile
from photonic.agent.sync_api import BatchStream
from photonic.models import (
    CommittedFile,
    ConflictPolicy,
    Decision,
    FailedFile,
    FileDecision,
    ManifestEntry,
    PossessionProof,
)

_Key = tuple[str, str]


@dataclass(frozen=True)
class BatchHeader:
    """The manifest's own fields."""

    batch_id: str
    agent_id: str
    conflict_policy: ConflictPolicy


@dataclass(frozen=True)
class FileFailure:
    """A file this call did not deliver: refused for good (permanent) or to be retried."""

    file: PendingFile
    reason: str
    permanent: bool


@dataclass
class ExchangeReport:
    """Per-file outcomes other than acknowledgements, for the caller to record."""

    failed: list[FileFailure] = field(default_factory=list)
    changed: list[PendingFile] = field(default_factory=list)
    """Files that changed after they were queued: the server was told to forget them, and
    they want hashing again."""


class SyncExchange:
    """Runs one SyncBatch call over stream for files, described by entries."""

    def __init__(self, stream: BatchStream, header: BatchHeader, files: Sequence[PendingFile],
                 entries: Sequence[ManifestEntry], *, sender: ChunkSender,
                 on_ack: Callable[[Ack], None]) -> None:
        self._stream = stream
        self._header = header
        self._entries = list(entries)
        self._sender = sender
        self._on_ack = on_ack
        self._by_key = {(f.watch_name, f.relative_path): f for f in files}
        self._by_sha: dict[str, list[PendingFile]] = defaultdict(list)
        for f in files:
            self._by_sha[f.sha256].append(f)
        self._open = set(self._by_key)
        self._sends: asyncio.Queue[tuple[PendingFile, int] | None] = asyncio.Queue()
        self.report = ExchangeReport()
        """Filled as replies arrive; complete when run() returns or raises."""

    async def run(self) -> ExchangeReport:
        h = self._header
        await self._stream.send_manifest(h.batch_id, h.agent_id, h.conflict_policy,
                                         self._entries)
        sender = asyncio.create_task(self._send_loop())
        reader = asyncio.create_task(self._read_replies())
        try:
            await self._until_read(reader, sender)
            await self._sends.put(None)
            await sender
            await self._stream.done_writing()
        finally:
            for task in (reader, sender):
                task.cancel()
            await asyncio.gather(reader, sender, return_exceptions=True)
        return self.report

    async def _until_read(self, reader: asyncio.Task[None], sender: asyncio.Task[None]
                          ) -> None:
        """Waits for the replies to end. A sender that fails (a chunk it could not read or
        write) ends the exchange with its error at once: the replies for the files it did
        not send would never come, and the batch would wait on the server's idle timeout."""
        while not reader.done():
            await asyncio.wait({reader, sender} if not sender.done() else {reader},
                               return_when=asyncio.FIRST_COMPLETED)
            failure = sender.exception() if sender.done() and not sender.cancelled() else None
            if failure is not None and not reader.done():
                self._stream.cancel()
                if isinstance(failure, OSError):  # a file it could not read: retry later
                    raise errors.Transient(f"could not send a file: {failure}") from failure
                raise failure
        reader.result()

    async def _read_replies(self) -> None:
        async for reply in self._stream.replies():
            await self._handle(reply)
            if not self._open:
                break
        if self._open:
            raise errors.Transient(
                f"server closed the batch with {len(self._open)} files unanswered")

    async def _handle(self, reply: FileDecision | CommittedFile | FailedFile) -> None:
        if isinstance(reply, FailedFile):
            for same in self._by_sha.get(reply.sha256, []):
                self._fail(same, reply.reason, permanent=not reply.retryable)
            return
        f = self._by_key.get((reply.watch_name, reply.relative_path))
        if f is None:
            return
        if isinstance(reply, CommittedFile):
            self._ack(f, dedup=False, conflict=reply.conflict)
        elif reply.action is Decision.HAVE:
            self._ack(f, dedup=True, conflict=reply.conflict)
        elif reply.action is Decision.REJECT:
            self._fail(f, reply.reason, permanent=True)
        elif reply.action is Decision.PROVE:
            await self._prove(f, reply)
        else:
            await self._sends.put((f, reply.offset))

    def _ack(self, f: PendingFile, *, dedup: bool, conflict: bool) -> None:
        if self._close(f):
            self._on_ack(Ack(f, dedup, conflict))

    def _fail(self, f: PendingFile, reason: str, *, permanent: bool) -> None:
        if self._close(f):
            self.report.failed.append(FileFailure(f, reason, permanent))

    async def _prove(self, f: PendingFile, reply: FileDecision) -> None:
        """Answers the server's challenge; a file that cannot be read any more, or changed
        since it was queued, fails this attempt like any unreadable source."""
        try:
            digest = await self._sender.possession_digest(f, reply)
        except (OSError, ValueError, FileChanged) as exc:
            self._fail(f, f"cannot read the file to prove it holds the photo: {exc}",
                       permanent=False)
            return
        await self._stream.send_proof(PossessionProof(f.sha256, reply.nonce, digest))

    def _close(self, f: PendingFile) -> bool:
        key: _Key = (f.watch_name, f.relative_path)
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
            for as_run, group in self._sender.plan_sends(ready, self._stream.accepts_chunk_runs):
                changed = (await self._sender.send_run(self._stream, group) if as_run
                           else await self._send_one(*group[0]))
                for f, exc in changed:
                    if await self._gave_up(f, exc):
                        return
            if ended:
                return

    async def _send_one(self, f: PendingFile, offset: int) -> list[tuple[PendingFile, FileChanged]]:
        try:
            await self._sender.send_file(self._stream, f, offset)
        except FileChanged as exc:
            return [(f, exc)]
        return []

    async def _gave_up(self, f: PendingFile, exc: FileChanged) -> bool:
        """Tells the server f changed and reports it; True once nothing is left to await."""
        await self._stream.send_abort(f.sha256, str(exc))
        for same in self._by_sha.get(f.sha256, []):
            self._close(same)
        self.report.changed.append(f)
        if not self._open:
            # Nothing else is awaited: wake the reader so the stream can finish.
            await self._stream.done_writing()
            return True
        return False
