"""SyncExchange over a fake BatchStream (the seam in agent/sync_api.py): it is given every
value it needs, acknowledgements go straight to the ack sink, and every other per-file
outcome comes back in its report, never through the caller."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from photonic import errors
from photonic.agent.acks import Ack
from photonic.agent.bandwidth import TokenBucket
from photonic.agent.chunksender import ChunkSender, ChunkSettings
from photonic.agent.client import ServerReply
from photonic.agent.exchange import BatchHeader, SyncExchange
from photonic.agent.statedb import PendingFile
from photonic.agent.sync_api import BatchStream
from photonic.models import (
    ChunkData,
    CommittedFile,
    ConflictPolicy,
    ContentHash,
    Decision,
    ExifSummary,
    FailedFile,
    FileDecision,
    ManifestEntry,
    PossessionProof,
)

HEADER = BatchHeader("b1", "laptop", ConflictPolicy.AUTO)


class FakeStream:
    """Answers the manifest with canned replies; a SEND is committed once its bytes came."""

    accepts_chunk_runs = True

    def __init__(self, decisions: Sequence[ServerReply], *, close_early: bool = False) -> None:
        self._replies: asyncio.Queue[ServerReply | None] = asyncio.Queue()
        for d in decisions:
            self._replies.put_nowait(d)
        if close_early:
            self._replies.put_nowait(None)
        self.manifest: tuple[str, str, list[ManifestEntry]] | None = None
        self.chunks: list[ChunkData] = []

    async def send_manifest(self, batch_id: str, agent_id: str, policy: ConflictPolicy,
                            entries: list[ManifestEntry]) -> None:
        self.manifest = (batch_id, agent_id, entries)

    async def send_chunk(self, chunk: ChunkData) -> None:
        await self.send_chunk_run([chunk])

    async def send_chunk_run(self, chunks: Sequence[ChunkData]) -> None:
        for c in chunks:
            self.chunks.append(c)
            self._replies.put_nowait(CommittedFile(c.sha256, "cam", _rel_of(c.sha256), 1))

    async def send_proof(self, proof: PossessionProof) -> None:
        raise AssertionError("no PROVE in these tests")

    async def send_abort(self, sha256: str, reason: str) -> None:
        raise AssertionError("nothing changes in these tests")

    async def done_writing(self) -> None:
        pass

    async def replies(self) -> AsyncIterator[ServerReply]:
        while (reply := await self._replies.get()) is not None:
            yield reply

    def cancel(self) -> None:
        pass


_RELS: dict[str, str] = {}


def _rel_of(sha: str) -> str:
    return _RELS[sha]


def _file(tmp_path: Path, i: int) -> PendingFile:
    data = f"photo {i}".encode()
    path = tmp_path / f"{i}.jpg"
    path.write_bytes(data)
    sha = ContentHash(hashlib.sha256(data).hexdigest())
    _RELS[sha] = path.name
    return PendingFile(id=i, watch_name="cam", relative_path=path.name, source_path=path,
                       sha256=sha, size=len(data), mtime_ns=path.stat().st_mtime_ns,
                       exif=ExifSummary(), base_sha256="", incomplete=False, attempts=0,
                       enqueued_unix_ms=0)


def _exchange(stream: BatchStream, files: list[PendingFile], acks: list[Ack],
              tmp_path: Path) -> SyncExchange:
    sender = ChunkSender(ChunkSettings(1 << 20, "never", 0.0, tmp_path / "ingest"),
                         TokenBucket(0), lambda _w, _r: None)
    entries = [ManifestEntry(sha256=f.sha256, size=f.size, watch_name=f.watch_name,
                             relative_path=f.relative_path, exif=f.exif, mtime_ns=f.mtime_ns)
               for f in files]
    return SyncExchange(stream, HEADER, files, entries, sender=sender, on_ack=acks.append)


def _decision(f: PendingFile, action: Decision, reason: str = "") -> FileDecision:
    return FileDecision(f.sha256, f.watch_name, f.relative_path, action, reason=reason)


def test_each_outcome_goes_to_its_one_place(tmp_path: Path) -> None:
    """SEND then COMMITTED and HAVE are acknowledgements; REJECT and a retryable FAILED are
    in the report with their permanence; the manifest carries the header it was given."""
    sent, had, refused, failed = (_file(tmp_path, i) for i in range(4))
    stream = FakeStream([_decision(sent, Decision.SEND), _decision(had, Decision.HAVE),
                         _decision(refused, Decision.REJECT, "too big"),
                         FailedFile(failed.sha256, "disk full", retryable=True)])
    acks: list[Ack] = []
    report = asyncio.run(_exchange(stream, [sent, had, refused, failed], acks, tmp_path).run())
    assert stream.manifest is not None and stream.manifest[:2] == ("b1", "laptop")
    assert [(a.file.id, a.dedup) for a in acks] == [(had.id, True), (sent.id, False)]
    assert [(x.file.id, x.reason, x.permanent) for x in report.failed] == [
        (refused.id, "too big", True), (failed.id, "disk full", False)]
    assert report.changed == []
    assert [c.data for c in stream.chunks] == [b"photo 0"]


def test_a_stream_closed_early_raises_and_keeps_the_outcomes_so_far(tmp_path: Path) -> None:
    """The call's own failure is the one exception; what was decided before it is still in
    exchange.report for the caller to record."""
    refused, unanswered = _file(tmp_path, 10), _file(tmp_path, 11)
    stream = FakeStream([_decision(refused, Decision.REJECT, "no")], close_early=True)
    exchange = _exchange(stream, [refused, unanswered], [], tmp_path)
    with pytest.raises(errors.Transient, match="1 files unanswered"):
        asyncio.run(exchange.run())
    assert [x.file.id for x in exchange.report.failed] == [refused.id]


class BrokenWrites(FakeStream):
    """A stream whose chunk writes fail: the server never sees the bytes it asked for."""

    async def send_chunk_run(self, chunks: Sequence[ChunkData]) -> None:
        raise errors.Transient("the sync stream closed")


def test_a_sender_that_fails_ends_the_exchange_instead_of_waiting_for_replies(
        tmp_path: Path) -> None:
    """When sending a file's chunks fails, its COMMITTED will never come: the exchange ends
    at once with the sender's error (the caller retries the batch), not after the server's
    idle timeout; the HAVE decided before is still acknowledged."""
    sent, had = _file(tmp_path, 20), _file(tmp_path, 21)
    stream = BrokenWrites([_decision(had, Decision.HAVE), _decision(sent, Decision.SEND)])
    acks: list[Ack] = []
    exchange = _exchange(stream, [sent, had], acks, tmp_path)
    with pytest.raises(errors.Transient, match="stream closed"):
        asyncio.run(asyncio.wait_for(exchange.run(), 10))
    assert [a.file.id for a in acks] == [had.id]
