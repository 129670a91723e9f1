"""ChunkSender.plan_sends: files whose rest fits in one chunk share messages (runs) bounded by one
chunk's bytes and MAX_CHUNKS_PER_RUN; anything else, and everything for a server without
runs, goes alone, so no message ever grows past what the server accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from photonic.agent.bandwidth import TokenBucket
from photonic.agent.chunksender import ChunkSender, ChunkSettings
from photonic.agent.statedb import PendingFile
from photonic.grpc_options import MAX_CHUNKS_PER_RUN
from photonic.models import ContentHash, ExifSummary

CHUNK = 1000

Ready = list[tuple[PendingFile, int]]
Groups = list[tuple[bool, Ready]]


@pytest.fixture(scope="module")
def uploader(tmp_path_factory: pytest.TempPathFactory) -> ChunkSender:
    """plan_sends keeps no state, so one sender serves every test (and every example)."""
    settings = ChunkSettings(chunk_size_bytes=CHUNK, compression="adaptive",
                             compression_min_saving=0.0,
                             ingest_dir=tmp_path_factory.mktemp("agent") / "ingest")
    return ChunkSender(settings, TokenBucket(0), lambda _wire, _raw: None)


def _file(i: int, size: int) -> PendingFile:
    return PendingFile(id=i, watch_name="photos", relative_path=f"{i}.jpg",
                       source_path=Path(f"/photos/{i}.jpg"), sha256=ContentHash(f"{i:064x}"),
                       size=size, mtime_ns=0, exif=ExifSummary(), base_sha256="",
                       incomplete=False, attempts=0, enqueued_unix_ms=0)


def _ready(*rests: int) -> Ready:
    """Files with these many bytes still to send (all from offset 0)."""
    return [(_file(i, rest), 0) for i, rest in enumerate(rests)]


def _ids(groups: Groups) -> list[tuple[bool, list[int]]]:
    return [(is_run, [f.id for f, _ in files]) for is_run, files in groups]


def test_small_files_are_packed_up_to_one_chunk(uploader: ChunkSender) -> None:
    """400 + 600 fills a chunk exactly (the limit is inclusive); the next 400 + 300 do not
    fit with them and start the next run."""
    groups = uploader.plan_sends(_ready(400, 600, 400, 300), runs=True)
    assert _ids(groups) == [(True, [0, 1]), (True, [2, 3])]


def test_the_rest_after_a_resume_offset_is_what_counts(uploader: ChunkSender) -> None:
    """A 5,000-byte file resumed at 4,500 has 500 bytes left: it fits in a run, and is sent
    from its offset."""
    resumed, small = (_file(0, 5000), 4500), (_file(1, 500), 0)
    assert uploader.plan_sends([resumed, small], runs=True) == [(True, [resumed, small])]


def test_a_file_larger_than_a_chunk_goes_alone_and_not_as_a_run(uploader: ChunkSender) -> None:
    """One byte over the chunk size needs two chunks: it is streamed on its own, and the
    small files around it still share a run."""
    groups = uploader.plan_sends(_ready(100, CHUNK + 1, 200), runs=True)
    assert (False, [1]) in _ids(groups)
    assert (True, [0, 2]) in _ids(groups)
    assert len(groups) == 2


def test_a_file_with_nothing_left_to_send_goes_alone_and_not_as_a_run(
        uploader: ChunkSender) -> None:
    """A file the server already holds whole (offset == size), or an empty file, would be an
    empty chunk in a run, which the server refuses: each goes alone."""
    complete = (_file(0, 700), 700)
    empty = (_file(1, 0), 0)
    small = (_file(2, 10), 0)
    groups = uploader.plan_sends([complete, small, empty], runs=True)
    assert (False, [complete]) in groups
    assert (False, [empty]) in groups
    assert (True, [small]) in groups
    assert len(groups) == 3


def test_more_than_the_most_chunks_per_run_are_split(uploader: ChunkSender) -> None:
    """300 one-byte files fit in one chunk's bytes but not in one run: 256, then 44."""
    ready = _ready(*[1] * 300)
    groups = uploader.plan_sends(ready, runs=True)
    assert [(is_run, len(files)) for is_run, files in groups] == [
        (True, MAX_CHUNKS_PER_RUN), (True, 300 - MAX_CHUNKS_PER_RUN)]
    assert [pair for _, files in groups for pair in files] == ready


def test_without_runs_every_file_goes_alone(uploader: ChunkSender) -> None:
    """A server that does not accept runs gets one file per group, in order."""
    ready = _ready(1, 2, CHUNK, CHUNK + 1, 0)
    groups = uploader.plan_sends(ready, runs=False)
    assert groups == [(False, [pair]) for pair in ready]


def test_nothing_ready_plans_nothing(uploader: ChunkSender) -> None:
    """No empty run is ever planned (it would be an empty message)."""
    assert uploader.plan_sends([], runs=True) == []


READY = st.lists(st.tuples(st.integers(0, 3 * CHUNK), st.integers(0, 3 * CHUNK)),
                 max_size=600).map(
    lambda pairs: [(_file(i, size), min(offset, size))
                   for i, (size, offset) in enumerate(pairs)])


@given(ready=READY)
def test_every_plan_respects_the_servers_limits(uploader: ChunkSender, ready: Ready) -> None:
    """Whatever is ready: every file is planned exactly once, in order within its kind; a run
    holds 1 to MAX_CHUNKS_PER_RUN files, each with 1 to CHUNK bytes left, adding up to at
    most CHUNK; a file that could not join a run goes alone."""
    groups = uploader.plan_sends(ready, runs=True)
    planned = [pair for _, files in groups for pair in files]
    assert sorted(f.id for f, _ in planned) == [f.id for f, _ in ready]
    runs = [files for is_run, files in groups if is_run]
    singles = [files for is_run, files in groups if not is_run]
    for files in runs:
        rests = [f.size - offset for f, offset in files]
        assert 1 <= len(files) <= MAX_CHUNKS_PER_RUN
        assert all(0 < rest <= CHUNK for rest in rests)
        assert sum(rests) <= CHUNK
    assert all(len(files) == 1 for files in singles)
    assert all(not 0 < f.size - offset <= CHUNK for files in singles for f, offset in files)
    fits = [0 < f.size - offset <= CHUNK for f, offset in ready]
    assert [pair for files in runs for pair in files] == [
        p for p, fit in zip(ready, fits, strict=True) if fit]
    assert [pair for files in singles for pair in files] == [
        p for p, fit in zip(ready, fits, strict=True) if not fit]
