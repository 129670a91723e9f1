"""Reads queued files and writes their chunks to a SyncBatch stream: whole small files share
messages (runs), larger ones go chunk by chunk, every byte through the bandwidth limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from photonic.agent.bandwidth import TokenBucket
from photonic.agent.filesource import FileChanged, FileSource, source_root
from photonic.agent.statedb import PendingFile
from photonic.agent.sync_api import BatchStream
from photonic.grpc_options import MAX_CHUNKS_PER_RUN
from photonic.media.chunks import AdaptiveCompressor
from photonic.media.possession import proof_digest
from photonic.models import ChunkData, FileDecision

SendGroup = tuple[bool, list[tuple[PendingFile, int]]]
"""(is a run, the files with the offset each is sent from)."""

SentCounter = Callable[[int, int], None]
"""Told (wire bytes, raw bytes) of every message written."""


@dataclass(frozen=True)
class ChunkSettings:
    chunk_size_bytes: int
    compression: str
    compression_min_saving: float
    ingest_dir: Path
    """Where ingest copies live: a queued file there is read beneath it."""


class ChunkSender:
    """Turns queued files into chunk messages on a stream; knows nothing of replies."""

    def __init__(self, settings: ChunkSettings, bucket: TokenBucket,
                 on_sent: SentCounter) -> None:
        self._s = settings
        self._bucket = bucket
        self._on_sent = on_sent

    def source(self, f: PendingFile, offset: int) -> FileSource:
        """The queued file as the upload reads it: confined to its watch folder or the ingest
        buffer, and refused if it changed since it was queued."""
        root = source_root(f.source_path, f.relative_path, self._s.ingest_dir)
        return FileSource(f.source_path, root=root, size=f.size, mtime_ns=f.mtime_ns,
                          offset=offset, chunk_bytes=self._s.chunk_size_bytes,
                          compressor=AdaptiveCompressor(
                              self._s.compression, min_saving=self._s.compression_min_saving))

    def plan_sends(self, ready: Sequence[tuple[PendingFile, int]], runs: bool
                   ) -> list[SendGroup]:
        """Groups the files to send, each as (is a run, files). With runs, files whose rest
        fits in one chunk share messages (up to one chunk's bytes and MAX_CHUNKS_PER_RUN
        each); any other file is a group of its own, streamed chunk by chunk."""
        limit = self._s.chunk_size_bytes
        groups: list[SendGroup] = []
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

    async def send_run(self, stream: BatchStream, files: Sequence[tuple[PendingFile, int]]
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
                self._on_sent(len(c.data), c.raw_size)
        return changed

    async def send_file(self, stream: BatchStream, f: PendingFile, offset: int) -> None:
        """Streams f from offset chunk by chunk; raises FileChanged if it changed."""
        source = self.source(f, offset)
        try:
            await asyncio.to_thread(source.open)
            while (piece := await asyncio.to_thread(source.next_chunk)) is not None:
                start, data, lz4, raw_size = piece
                await self._bucket.take(len(data))
                await stream.send_chunk(ChunkData(f.sha256, start, data, lz4, raw_size))
                self._on_sent(len(data), raw_size)
        finally:
            source.close()

    async def possession_digest(self, f: PendingFile, challenge: FileDecision) -> bytes:
        """Answers the server's PROVE challenge from the file's own bytes (a few KiB), read
        as the upload would read them; raises OSError, ValueError or FileChanged."""
        return await asyncio.to_thread(_possession_digest, self.source(f, 0), challenge)


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


def _possession_digest(source: FileSource, reply: FileDecision) -> bytes:
    """SHA-256 of the challenge's nonce and ranges, read from the queued file."""
    source.open()
    try:
        return proof_digest(reply.nonce, reply.ranges, source.read_at)
    finally:
        source.close()
