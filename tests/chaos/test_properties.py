"""Property-based tests (hypothesis) of the manifest and chunk handling, and a bounded atheris
fuzz run of the parsing code where atheris is installed."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import posixpath
import re
import subprocess
import tempfile
from pathlib import Path

import lz4.frame
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from photonic import wire
from photonic.errors import IntegrityError, InvalidInput
from photonic.grpc_options import MAX_CHUNK_BYTES
from photonic.media.chunks import compress_chunk, decompress_chunk
from photonic.models import (
    ChunkData,
    CommittedFile,
    ConflictPolicy,
    ContentHash,
    ExifSummary,
    FailedFile,
    ManifestEntry,
)
from photonic.paths import safe_relative_path
from photonic.server.fs_sync import FilesystemSync
from photonic.server.ingest import IngestSession
from photonic.server.ingest_deps import IngestDeps
from photonic.v1 import sync_pb2
from tests.chaos.tally import TALLY
from tests.support.daemons import PYTHON, _env
from tests.support.ingest import real_ingest_deps

pytestmark = pytest.mark.chaos

FUZZ_SCRIPT = Path(__file__).with_name("fuzz_parsing.py")
FUZZ_RUNS = 200_000
FUZZ_SECONDS = 15
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=70_000), st.floats(0.0, 0.5))
def test_lz4_chunks_round_trip(raw: bytes, min_saving: float) -> None:
    """Whatever compress_chunk produces, decompress_chunk restores exactly the raw bytes."""
    TALLY.fuzz_inputs += 1
    data, compressed = compress_chunk(raw, min_saving=min_saving)
    if compressed:
        assert decompress_chunk(data, expected_raw_size=len(raw),
                                max_raw_size=MAX_CHUNK_BYTES) == raw
    else:
        assert data == raw


@FAST
@given(st.one_of(st.binary(max_size=4096),
                 st.binary(max_size=20_000).map(lambda b: lz4.frame.compress(b))),
       st.integers(-5, MAX_CHUNK_BYTES + 5))
def test_decompress_never_returns_other_than_the_declared_size(data: bytes,
                                                                expected: int) -> None:
    """Arbitrary bytes and declared sizes: either exactly `expected` bytes come out, or an
    IntegrityError; never another exception, never more bytes."""
    TALLY.fuzz_inputs += 1
    try:
        out = decompress_chunk(data, expected_raw_size=expected, max_raw_size=MAX_CHUNK_BYTES)
    except IntegrityError:
        return
    assert len(out) == expected


PATH_ALPHABET = st.sampled_from(["a", "b", ".", "..", "/", "\\", "\x00", "é", "📷", " ", ":"])


@FAST
@given(st.one_of(st.text(max_size=300), st.lists(PATH_ALPHABET, max_size=40).map("".join)))
def test_accepted_paths_never_escape_the_library(text: str) -> None:
    """A path safe_relative_path accepts stays inside any root it is joined to, is relative,
    and holds no NUL; everything else is InvalidInput."""
    TALLY.fuzz_inputs += 1
    try:
        rel = safe_relative_path(text)
    except InvalidInput:
        return
    root = "/srv/library/agent/watch"
    joined = posixpath.normpath(posixpath.join(root, str(rel)))
    assert joined.startswith(root + "/")
    assert not rel.is_absolute() and "\x00" not in str(rel) and ".." not in rel.parts


ENTRIES = st.builds(
    ManifestEntry,
    sha256=st.text("0123456789abcdef", min_size=64, max_size=64).map(ContentHash),
    size=st.integers(0, 2**62), watch_name=st.text(max_size=30),
    relative_path=st.text(max_size=200),
    exif=st.builds(ExifSummary, capture_time_unix_ms=st.integers(-2**62, 2**62),
                   camera_make=st.text(max_size=20), width=st.integers(0, 2**31 - 1)),
    mtime_ns=st.integers(-2**62, 2**62), base_sha256=st.text(max_size=64),
    incomplete=st.booleans())


@FAST
@given(st.lists(ENTRIES, max_size=5))
def test_manifest_entries_survive_the_wire(entries: list[ManifestEntry]) -> None:
    """Manifest entries go through protobuf and back unchanged, whatever their content."""
    TALLY.fuzz_inputs += 1
    message = wire.manifest_to_wire("b", "laptop", ConflictPolicy.AUTO, entries)
    parsed = sync_pb2.SyncClientMessage.FromString(message.SerializeToString())
    assert [wire.entry_from_wire(e) for e in parsed.manifest.files] == entries


@FAST
@given(st.binary(max_size=2000))
def test_wire_parsing_of_arbitrary_bytes_fails_cleanly(data: bytes) -> None:
    """Arbitrary bytes either fail to parse (DecodeError) or give messages wire.py converts."""
    TALLY.fuzz_inputs += 1
    try:
        message = sync_pb2.SyncClientMessage.FromString(data)
    except DecodeError:
        return
    for entry in message.manifest.files:
        wire.entry_from_wire(entry)
    wire.chunk_from_wire(message.chunk)


# The chunk state machine of one upload, fed honest and hostile chunks in any order.
CHUNK_OPS = st.lists(st.tuples(st.sampled_from(["next", "skip", "repeat", "overrun", "flip"]),
                               st.integers(1, 3000)), min_size=1, max_size=12)


def _chunk_for(op: str, step: int, content: bytes, offset: int, sha: str) -> ChunkData:
    start = {"skip": offset + 1, "repeat": max(0, offset - step)}.get(op, offset)
    piece = content[start:start + step]
    if op == "overrun":
        piece = content[start:] + b"!" * step
    if op == "flip" and piece:
        piece = bytes([piece[0] ^ 1]) + piece[1:]
    return ChunkData(ContentHash(sha), start, piece, False, len(piece))


async def _feed(deps: IngestDeps, content: bytes, ops: list[tuple[str, int]]) -> list[object]:
    sent: list[object] = []

    async def send(item: object) -> None:
        sent.append(item)

    sha = hashlib.sha256(content).hexdigest()
    session = IngestSession("laptop", deps, send)
    await session.on_manifest([ManifestEntry(ContentHash(sha), len(content), "photos",
                                             "IMG.jpg")], ConflictPolicy.AUTO)
    offset = 0
    for op, step in ops:
        if any(isinstance(s, CommittedFile | FailedFile) for s in sent):
            break
        await session.on_chunks([_chunk_for(op, step, content, offset, sha)])
        offset = min(len(content), offset + step) if op == "next" else offset
    await session.close()
    return sent


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=8000), CHUNK_OPS, st.booleans())
def test_chunk_sequences_store_only_verified_content(content: bytes,
                                                     ops: list[tuple[str, int]],
                                                     filesystem_wide: bool) -> None:
    """Any sequence of honest and hostile chunks (skipped, repeated, overrunning, flipped
    bytes): the content is stored only when it is complete and verified, acknowledged only
    once stored, and a hostile chunk fails the file without storing anything. Both ways of
    making a group durable (one syncfs, or fsync per file)."""
    TALLY.fuzz_inputs += 1
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        filesystem = FilesystemSync(Path(tmp)) if filesystem_wide else None
        if filesystem is not None:
            stack.callback(filesystem.close)
        deps = real_ingest_deps(Path(tmp), filesystem)
        try:
            sent = asyncio.run(_feed(deps, content, ops))
            sha = hashlib.sha256(content).hexdigest()
            stored = deps.store.has_object(sha)
            committed = any(isinstance(s, CommittedFile) for s in sent)
            assert committed == stored
            if stored:
                assert deps.store.object_path(sha).read_bytes() == content
        finally:
            deps.catalog.close()


def test_atheris_fuzzes_the_parsers_for_a_bounded_time() -> None:
    """libFuzzer-driven inputs to LZ4 chunk decompression, path validation and wire parsing
    find no crash or broken invariant within the run budget."""
    atheris = pytest.importorskip("atheris", reason="atheris is not installed here")
    del atheris
    proc = subprocess.run([PYTHON, str(FUZZ_SCRIPT), f"-runs={FUZZ_RUNS}",
                           f"-max_total_time={FUZZ_SECONDS}"],
                          capture_output=True, text=True, timeout=FUZZ_SECONDS + 60, env=_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    done = re.search(r"Done (\d+) runs", proc.stderr)
    assert done, proc.stderr[-2000:]
    TALLY.fuzz_inputs += int(done.group(1))
