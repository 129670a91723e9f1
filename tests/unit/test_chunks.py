"""Tests for photonic.media.chunks: adaptive LZ4 on the wire and bounded decompression."""

from __future__ import annotations

import gc
import random
import tracemalloc
from pathlib import Path

import lz4.frame
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from photonic.errors import IntegrityError, InvalidInput
from photonic.media.chunks import (
    AdaptiveCompressor,
    CompressionMode,
    compress_chunk,
    decompress_chunk,
    decompression_bytes,
    iter_file_chunks,
)
from tests.support.photos import make_jpeg, make_tiff

MIB = 1 << 20


def _incompressible(size: int, seed: int = 5) -> bytes:
    return random.Random(seed).randbytes(size)


def _compressible(tmp_path: Path, size: int) -> bytes:
    data = make_tiff(tmp_path / "scan.tif", seed=2, width=800, height=600).read_bytes()
    return (data * (size // len(data) + 1))[:size]


def test_compress_chunk_keeps_lz4_for_compressible_data(tmp_path: Path) -> None:
    """An uncompressed TIFF shrinks, so the chunk travels as an LZ4 frame that round-trips."""
    raw = _compressible(tmp_path, 256 * 1024)
    data, compressed = compress_chunk(raw, min_saving=0.1)
    assert compressed
    assert len(data) < len(raw) * 0.9
    assert decompress_chunk(data, expected_raw_size=len(raw), max_raw_size=MIB) == raw


def test_compress_chunk_sends_random_bytes_raw() -> None:
    """Random bytes do not shrink, so the raw chunk is returned unchanged."""
    raw = _incompressible(256 * 1024)
    assert compress_chunk(raw, min_saving=0.05) == (raw, False)


def test_compress_chunk_sends_jpeg_raw(tmp_path: Path) -> None:
    """A JPEG's entropy-coded data does not pay for LZ4."""
    raw = make_jpeg(tmp_path / "a.jpg", seed=1, width=800, height=600).read_bytes()
    assert compress_chunk(raw, min_saving=0.05) == (raw, False)


def test_compress_chunk_threshold_decides(tmp_path: Path) -> None:
    """A saving below min_saving is not worth sending compressed."""
    raw = _compressible(tmp_path, 64 * 1024)
    frame = lz4.frame.compress(raw)
    saving = 1 - len(frame) / len(raw)
    assert compress_chunk(raw, min_saving=saving - 0.01)[1]
    assert not compress_chunk(raw, min_saving=min(0.999, saving + 0.01))[1]


def test_compress_chunk_stores_content_size_in_header(tmp_path: Path) -> None:
    """The frame header carries the raw size, which the receiver checks before inflating."""
    raw = _compressible(tmp_path, 100_000)
    data, _ = compress_chunk(raw, min_saving=0.0)
    assert lz4.frame.get_frame_info(data)["content_size"] == len(raw)


def test_adaptive_compressor_gives_up_after_incompressible_first_chunk(tmp_path: Path) -> None:
    """After a first chunk that did not shrink, later chunks are sent raw without trying."""
    compressor = AdaptiveCompressor(CompressionMode.ADAPTIVE, min_saving=0.1)
    first = _incompressible(64 * 1024)
    assert compressor.encode(first) == (first, False)
    assert not compressor.trying
    later = _compressible(tmp_path, 64 * 1024)
    assert compressor.encode(later) == (later, False)
    assert compressor.bytes_in == compressor.bytes_out == len(first) + len(later)


def test_adaptive_compressor_keeps_compressing_when_it_pays(tmp_path: Path) -> None:
    """A file whose first chunk shrinks keeps being compressed and the counters show the gain."""
    compressor = AdaptiveCompressor("adaptive", min_saving=0.1)
    raw = _compressible(tmp_path, 128 * 1024)
    results = [compressor.encode(raw[i : i + 32768]) for i in range(0, len(raw), 32768)]
    assert all(compressed for _, compressed in results)
    assert compressor.chunks_compressed == 4
    assert compressor.bytes_in == len(raw)
    assert compressor.bytes_out == sum(len(data) for data, _ in results) < len(raw)


def test_always_mode_tries_every_chunk(tmp_path: Path) -> None:
    """'always' does not give up after an incompressible first chunk."""
    compressor = AdaptiveCompressor("always", min_saving=0.1)
    compressor.encode(_incompressible(32 * 1024))
    assert compressor.encode(_compressible(tmp_path, 32 * 1024))[1]


def test_never_mode_sends_everything_raw(tmp_path: Path) -> None:
    """'never' never compresses, even content that would shrink."""
    compressor = AdaptiveCompressor("never")
    raw = _compressible(tmp_path, 32 * 1024)
    assert compressor.encode(raw) == (raw, False)


def test_unknown_mode_is_refused() -> None:
    """A misspelt mode is an InvalidInput naming the choices."""
    with pytest.raises(InvalidInput, match="adaptive"):
        AdaptiveCompressor("sometimes")


def _zeros_frame(total_bytes: int, *, store_size: bool) -> bytes:
    """An LZ4 frame of total_bytes zeros, built without ever holding them all in memory."""
    size = total_bytes if store_size else 0
    with lz4.frame.LZ4FrameCompressor(auto_flush=True) as compressor:
        parts = [compressor.begin(source_size=size)]
        block = bytes(MIB)
        for _ in range(total_bytes // MIB):
            parts.append(compressor.compress(block))
        parts.append(compressor.flush())
    return b"".join(parts)


@pytest.mark.parametrize(
    ("store_size", "refusal"), [(True, "header declares"), (False, "content size")]
)
def test_decompress_refuses_bomb_without_allocating_it(store_size: bool, refusal: str) -> None:
    """64 MiB of zeros declared as a 1 MiB chunk is refused with little memory allocated."""
    bomb = _zeros_frame(64 * MIB, store_size=store_size)
    tracemalloc.start()
    try:
        with pytest.raises(IntegrityError, match=refusal):
            decompress_chunk(bomb, expected_raw_size=MIB, max_raw_size=4 * MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB


def test_decompress_refuses_declared_size_over_limit() -> None:
    """A chunk declaring more raw bytes than the limit is refused before decompressing."""
    frame = lz4.frame.compress(bytes(1000))
    with pytest.raises(IntegrityError, match="limit"):
        decompress_chunk(frame, expected_raw_size=2 * MIB, max_raw_size=MIB)


def test_decompress_refuses_header_size_mismatch() -> None:
    """A frame whose header declares another size than the chunk is refused."""
    frame = lz4.frame.compress(bytes(1000), store_size=True)
    with pytest.raises(IntegrityError, match="declares"):
        decompress_chunk(frame, expected_raw_size=999, max_raw_size=MIB)


def test_decompress_refuses_short_and_truncated_frames() -> None:
    """A frame that inflates to fewer bytes than declared, or is cut off, is refused."""
    raw = _incompressible(50_000) + bytes(50_000)
    frame = lz4.frame.compress(raw, store_size=True)
    with pytest.raises(IntegrityError):
        decompress_chunk(frame, expected_raw_size=len(raw) + 1, max_raw_size=MIB)
    with pytest.raises(IntegrityError, match=r"truncated|corrupt"):
        decompress_chunk(frame[:-40], expected_raw_size=len(raw), max_raw_size=MIB)


def _frame(raw_bytes: int, *, block_size: int, source_size: int) -> bytes:
    """A real frame of raw_bytes zeros in blocks of block_size whose header declares
    source_size raw bytes (0: no content size)."""
    with lz4.frame.LZ4FrameCompressor(block_size=block_size) as compressor:
        return b"".join([compressor.begin(source_size=source_size),
                         compressor.compress(bytes(raw_bytes)), compressor.flush()])


@pytest.mark.parametrize(
    ("raw_bytes", "block_size"),
    [(16 * 1024, lz4.frame.BLOCKSIZE_MAX64KB), (100 * 1024, lz4.frame.BLOCKSIZE_MAX256KB),
     (MIB + 1, lz4.frame.BLOCKSIZE_MAX4MB), (4 * MIB, lz4.frame.BLOCKSIZE_MAX4MB),
     (4 * MIB, lz4.frame.BLOCKSIZE_MAX64KB)])
def test_decompress_accepts_blocks_up_to_the_size_the_chunk_needs(raw_bytes: int,
                                                                  block_size: int) -> None:
    """A frame whose blocks are no larger than the smallest block size holding the chunk
    (64 KiB always) round-trips: another LZ4 sender's honest 4 MiB blocks are accepted."""
    frame = _frame(raw_bytes, block_size=block_size, source_size=raw_bytes)
    assert decompress_chunk(frame, expected_raw_size=raw_bytes, max_raw_size=4 * MIB) == bytes(
        raw_bytes)


@pytest.mark.parametrize(
    ("raw_bytes", "block_size"),
    [(16 * 1024, lz4.frame.BLOCKSIZE_MAX4MB), (16 * 1024, lz4.frame.BLOCKSIZE_MAX256KB),
     (100 * 1024, lz4.frame.BLOCKSIZE_MAX1MB), (MIB, lz4.frame.BLOCKSIZE_MAX4MB)])
def test_decompress_refuses_a_header_naming_blocks_larger_than_the_chunk(
        raw_bytes: int, block_size: int) -> None:
    """A header naming a block size larger than the chunk needs is refused from the header:
    the decoder would size its buffers by it (a 4 MiB block for a 16 KiB chunk)."""
    frame = _frame(raw_bytes, block_size=block_size, source_size=raw_bytes)
    with pytest.raises(IntegrityError, match="blocks of up to"):
        decompress_chunk(frame, expected_raw_size=raw_bytes, max_raw_size=4 * MIB)


def test_decompress_refuses_a_frame_without_its_content_size() -> None:
    """A frame whose header does not declare the content size is refused from the header,
    with a message saying how to compress instead."""
    frame = _frame(1000, block_size=lz4.frame.BLOCKSIZE_MAX64KB, source_size=0)
    with pytest.raises(IntegrityError, match="store_size=True"):
        decompress_chunk(frame, expected_raw_size=1000, max_raw_size=MIB)


def test_decompress_refuses_a_header_that_lies_about_the_content_size() -> None:
    """A header declaring the chunk's 16 KiB over 64 KiB blocks holding 4 MiB is refused once
    the output passes 16 KiB, with at most the chunk's size allocated for output."""
    header = lz4.frame.LZ4FrameCompressor(block_size=lz4.frame.BLOCKSIZE_MAX64KB).begin(
        source_size=16 * 1024)
    body = _frame(4 * MIB, block_size=lz4.frame.BLOCKSIZE_MAX64KB, source_size=0)[7:]
    tracemalloc.start()
    try:
        with pytest.raises(IntegrityError, match=r"inflates beyond|corrupt"):
            decompress_chunk(header + body, expected_raw_size=16 * 1024, max_raw_size=MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < decompression_bytes(16 * 1024) + len(body)


def test_decompress_refuses_concatenated_frames() -> None:
    """An honest frame followed by a second frame is not one chunk: refused."""
    one = lz4.frame.compress(bytes(1000), store_size=True)
    with pytest.raises(IntegrityError, match="one frame per chunk"):
        decompress_chunk(one + one, expected_raw_size=1000, max_raw_size=MIB)


def test_a_refused_chunk_keeps_no_decoder_alive_without_a_garbage_collection() -> None:
    """The IntegrityError of a corrupt frame, kept by the caller with the collector off,
    holds no LZ4 decoder: each refused chunk's buffers are freed at once, so a message of
    256 bombs cannot pin 256 decoders until the next collection."""
    frame = bytearray(lz4.frame.compress(_incompressible(50_000), store_size=True,
                                         block_checksum=True))
    frame[len(frame) // 2] ^= 0xFF  # the block's checksum no longer matches: lz4 raises
    gc.collect()
    gc.disable()
    try:
        kept = []
        for _ in range(3):
            with pytest.raises(IntegrityError) as refused:
                decompress_chunk(bytes(frame), expected_raw_size=50_000, max_raw_size=MIB)
            kept.append(refused.value)
        alive = [o for o in gc.get_objects() if isinstance(o, lz4.frame.LZ4FrameDecompressor)]
    finally:
        gc.enable()
    assert alive == []
    assert all(e.__context__ is None for e in kept)


def test_decompression_bytes_bounds_the_python_side_of_a_refusal() -> None:
    """decompression_bytes (what the server's memory budget charges) is at least what the
    output buffers of a maximal bomb take."""
    header = lz4.frame.LZ4FrameCompressor(block_size=lz4.frame.BLOCKSIZE_MAX4MB).begin(
        source_size=4 * MIB)
    bomb = header + _frame(64 * MIB, block_size=lz4.frame.BLOCKSIZE_MAX4MB, source_size=0)[7:]
    tracemalloc.start()
    try:
        with pytest.raises(IntegrityError):
            decompress_chunk(bomb, expected_raw_size=4 * MIB, max_raw_size=4 * MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= decompression_bytes(4 * MIB)


def test_decompress_refuses_trailing_bytes() -> None:
    """Bytes after the end of the frame mean the chunk is not what was sent."""
    frame = lz4.frame.compress(b"hello" * 100)
    with pytest.raises(IntegrityError, match="after the end"):
        decompress_chunk(frame + b"extra", expected_raw_size=500, max_raw_size=MIB)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096))
def test_decompress_garbage_raises_only_integrity_error(garbage: bytes) -> None:
    """Arbitrary bytes either decode to the declared size or raise IntegrityError, nothing else."""
    try:
        out = decompress_chunk(garbage, expected_raw_size=4096, max_raw_size=MIB)
    except IntegrityError:
        return
    assert len(out) == 4096


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=4096), st.integers(min_value=0, max_value=7))
def test_decompress_mutated_frames_raise_only_integrity_error(raw: bytes, flip: int) -> None:
    """A valid frame with one corrupted byte never escapes as another exception type."""
    frame = bytearray(lz4.frame.compress(raw))
    frame[len(frame) * flip // 8] ^= 0xA5
    try:
        out = decompress_chunk(bytes(frame), expected_raw_size=len(raw), max_raw_size=MIB)
    except IntegrityError:
        return
    assert len(out) == len(raw)  # the flip hit a byte LZ4 does not check, e.g. a literal


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=20_000),
        st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=64), st.integers(1, 500)),
    ),
    st.floats(min_value=0.0, max_value=0.9),
)
def test_compress_round_trip_property(raw: bytes, min_saving: float) -> None:
    """Whatever compress_chunk sends, the receiver recovers exactly the raw bytes."""
    data, compressed = compress_chunk(raw, min_saving=min_saving)
    if compressed:
        assert len(data) <= len(raw) * (1 - min_saving)
        data = decompress_chunk(data, expected_raw_size=len(raw), max_raw_size=MIB)
    assert data == raw


def test_iter_file_chunks_from_offset(tmp_path: Path) -> None:
    """Chunks from an offset concatenate to the file's tail, none larger than chunk_bytes."""
    data = _incompressible(10_000)
    (tmp_path / "f").write_bytes(data)
    chunks = list(iter_file_chunks(tmp_path / "f", offset=1234, chunk_bytes=3000))
    assert b"".join(chunks) == data[1234:]
    assert [len(c) for c in chunks] == [3000, 3000, 2766]
    assert list(iter_file_chunks(tmp_path / "f", offset=10_000, chunk_bytes=3000)) == []


def test_iter_file_chunks_rejects_bad_arguments(tmp_path: Path) -> None:
    """Negative offsets and non-positive chunk sizes are refused."""
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(InvalidInput):
        next(iter_file_chunks(tmp_path / "f", offset=-1, chunk_bytes=10))
    with pytest.raises(InvalidInput):
        next(iter_file_chunks(tmp_path / "f", offset=0, chunk_bytes=0))


def test_adaptive_trial_looks_at_the_middle_of_a_big_first_chunk(tmp_path: Path) -> None:
    """A 1 MiB first chunk whose start compresses (a JPEG's header and EXIF) but whose middle
    is entropy-coded is sent raw after a 64 KiB trial; a compressible one is compressed."""
    header = bytes(256 * 1024)  # zeros: very compressible
    jpeg_like = header + _incompressible(768 * 1024)
    compressor = AdaptiveCompressor("adaptive", min_saving=0.1)
    assert compressor.encode(jpeg_like) == (jpeg_like, False)
    assert not compressor.trying
    tiff_like = _compressible(tmp_path, 1024 * 1024)
    data, compressed = AdaptiveCompressor("adaptive", min_saving=0.1).encode(tiff_like)
    assert compressed and len(data) < len(tiff_like)
