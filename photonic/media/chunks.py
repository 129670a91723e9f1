"""LZ4 for file chunks on the wire: compress only where it pays, decompress only within bounds."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import lz4.frame

from photonic.errors import IntegrityError, InvalidInput
from photonic.grpc_options import MAX_CHUNK_BYTES

DEFAULT_MIN_SAVING = 0.05
"""Keep a compressed chunk only if it is at least this fraction smaller than the raw chunk."""


class CompressionMode(StrEnum):
    ADAPTIVE = "adaptive"
    """Try the first chunk of a file; if LZ4 did not pay there, send the rest raw."""
    ALWAYS = "always"
    """Try every chunk; each still travels raw when LZ4 would not save min_saving."""
    NEVER = "never"
    """Send every chunk raw."""


def compress_chunk(raw: bytes, *, min_saving: float) -> tuple[bytes, bool]:
    """Return (LZ4 frame, True) if it saves at least min_saving of len(raw), else (raw, False).

    The frame records the raw size in its header so the receiver can refuse a frame that would
    inflate beyond what the chunk declared, before decompressing anything.
    """
    if not raw:
        return raw, False
    frame: bytes = lz4.frame.compress(raw, store_size=True)
    if len(frame) <= len(raw) * (1.0 - min_saving):
        return frame, True
    return raw, False


TRIAL_SAMPLE_BYTES = 64 * 1024


class AdaptiveCompressor:
    """Compresses the chunks of one file, giving up early on content that does not shrink.

    JPEG, HEIC and most RAW files are already entropy-coded, so LZ4 burns CPU on them for
    nothing; one failed trial on the first chunk is a reliable sign for the rest of the file.
    """

    def __init__(
        self,
        mode: CompressionMode | str = CompressionMode.ADAPTIVE,
        *,
        min_saving: float = DEFAULT_MIN_SAVING,
    ) -> None:
        try:
            self._mode = CompressionMode(mode)
        except ValueError:
            choices = ", ".join(m.value for m in CompressionMode)
            raise InvalidInput(f"compression mode {mode!r} is not one of: {choices}") from None
        if not 0.0 <= min_saving < 1.0:
            raise InvalidInput(f"min_saving must be in [0, 1), got {min_saving}")
        self._min_saving = min_saving
        self._trying = self._mode is not CompressionMode.NEVER
        self._first_chunk = True
        self.bytes_in = 0
        """Raw bytes handed to encode()."""
        self.bytes_out = 0
        """Bytes returned by encode(), i.e. what goes on the wire."""
        self.chunks_compressed = 0

    @property
    def mode(self) -> CompressionMode:
        return self._mode

    @property
    def trying(self) -> bool:
        """Whether the next chunk will be offered to LZ4."""
        return self._trying

    def encode(self, raw: bytes) -> tuple[bytes, bool]:
        """Return (data to send, True if data is an LZ4 frame) for the next chunk of the file."""
        self.bytes_in += len(raw)
        data, compressed = raw, False
        if self._trying and raw:
            adaptive_first = self._first_chunk and self._mode is CompressionMode.ADAPTIVE
            self._first_chunk = False
            if adaptive_first and not _sample_shrinks(raw, self._min_saving):
                self._trying = False
            else:
                data, compressed = compress_chunk(raw, min_saving=self._min_saving)
                if adaptive_first and not compressed:
                    self._trying = False
        if compressed:
            self.chunks_compressed += 1
        self.bytes_out += len(data)
        return data, compressed


def _sample_shrinks(raw: bytes, min_saving: float) -> bool:
    """Whether a slice from the middle of raw compresses by min_saving: the trial costs a
    sixteenth of compressing a 1 MiB chunk, and the middle is the photo's entropy-coded
    data, not the header and EXIF at its start, which shrink even in a JPEG."""
    if len(raw) < 2 * TRIAL_SAMPLE_BYTES:
        return True  # small enough to try whole
    start = (len(raw) - TRIAL_SAMPLE_BYTES) // 2
    return compress_chunk(raw[start:start + TRIAL_SAMPLE_BYTES], min_saving=min_saving)[1]


BLOCK_SIZES_BYTES: tuple[int, ...] = (64 << 10, 256 << 10, 1 << 20, 4 << 20)
"""The maximum block sizes an LZ4 frame header may name (block size ids 4 to 7)."""

LINKED_BLOCK_WINDOW_BYTES = 128 << 10
"""What a decoder keeps beside its block buffer for blocks that refer to earlier ones."""


def _block_limit(raw_size: int) -> int:
    """The largest block a frame of raw_size bytes needs: the smallest block size that holds
    it (64 KiB, what every photonic agent sends, is always allowed)."""
    return next((b for b in BLOCK_SIZES_BYTES if b >= raw_size), BLOCK_SIZES_BYTES[-1])


def decompression_bytes(raw_size: int) -> int:
    """The most memory decompress_chunk allocates for a chunk of raw_size bytes: the block
    buffers of the decoder (bounded by the header check), the output and its one copy."""
    block = _block_limit(raw_size)
    return 2 * block + LINKED_BLOCK_WINDOW_BYTES + 2 * (raw_size + 1)


def _check_header(data: bytes, expected_raw_size: int) -> None:
    """Refuses a frame whose header would make the decoder allocate more than the chunk
    needs, before any decoder exists: LZ4 sizes its block buffers by the header's block size
    (a 4 MiB block for a 16 KiB chunk was how a 4 MB message pinned 1 GB), and a frame
    without its content size can only be checked once it has been inflated."""
    try:
        info = lz4.frame.get_frame_info(data)
    except Exception as exc:  # lz4 reports a bad header as RuntimeError; trust no type
        message = f"chunk is not a valid LZ4 frame: {exc}"
    else:
        message = _header_problem(info, expected_raw_size)
    if message:
        raise IntegrityError(message)


def _header_problem(info: Mapping[str, int], expected_raw_size: int) -> str:
    """What is wrong with a frame header (get_frame_info's fields; flags are bools), or ""."""
    if info.get("skippable"):
        return "chunk is a skippable LZ4 frame, not compressed content"
    declared = int(info.get("content_size") or 0)
    if declared == 0:
        return ("LZ4 frame header does not declare its content size; compress chunks with "
                "the size stored (store_size=True)")
    if declared != expected_raw_size:
        return (f"LZ4 frame header declares {declared} raw bytes but the chunk declares "
                f"{expected_raw_size}")
    block = int(info.get("block_size") or 0)
    if block > _block_limit(expected_raw_size):
        return (f"LZ4 frame uses blocks of up to {block} bytes for a chunk of "
                f"{expected_raw_size}; at most {_block_limit(expected_raw_size)} are accepted")
    return ""


def decompress_chunk(data: bytes, *, expected_raw_size: int, max_raw_size: int) -> bytes:
    """Decompress one LZ4 frame into exactly expected_raw_size bytes, or raise IntegrityError.

    The header is checked first (content size equal to the chunk's, blocks no larger than
    the chunk needs), then the frame is inflated into one buffer of expected_raw_size + 1
    bytes, so a frame crafted to inflate to gigabytes costs at most decompression_bytes()
    before it is refused. The IntegrityError carries no traceback into the decoder: a
    refused chunk frees its decoder at once, not at the next garbage collection.
    """
    if expected_raw_size <= 0 or expected_raw_size > max_raw_size:
        raise IntegrityError(
            f"chunk declares {expected_raw_size} raw bytes; the limit is {max_raw_size}"
        )
    _check_header(data, expected_raw_size)
    out = _inflate(data, expected_raw_size)
    if isinstance(out, str):
        raise IntegrityError(out)
    return out


class ReceivedChunk(Protocol):
    """A downloaded chunk as the wire carries it (BlobChunk, ObjectChunk)."""

    @property
    def offset(self) -> int: ...
    @property
    def data(self) -> bytes: ...
    @property
    def lz4(self) -> bool: ...
    @property
    def raw_size(self) -> int: ...


def received_bytes(chunk: ReceivedChunk, expected_offset: int, sender: str) -> bytes:
    """A downloaded chunk's raw bytes, which must start where the file so far ends: LZ4
    inflated within its declared size, and an IntegrityError naming sender for a chunk out of
    place, so what a caller appends is always the next byte of the file."""
    if chunk.offset != expected_offset:
        raise IntegrityError(f"{sender} sent bytes at offset {chunk.offset}, "
                             f"expected {expected_offset}")
    if not chunk.lz4:
        return chunk.data
    return decompress_chunk(chunk.data, expected_raw_size=chunk.raw_size,
                            max_raw_size=MAX_CHUNK_BYTES)


def _inflate(data: bytes, expected_raw_size: int) -> bytes | str:
    """The frame's content, or why it was refused: returned, not raised, so no exception
    (with frames holding the decoder and its buffers) outlives this call."""
    with lz4.frame.LZ4FrameDecompressor() as decompressor:  # freed on exit, not by the GC
        try:
            out: bytes = decompressor.decompress(data, max_length=expected_raw_size + 1)
        except Exception as exc:  # corrupt blocks raise RuntimeError; garbage must not leak
            return f"LZ4 frame is corrupt: {exc}"
        if len(out) > expected_raw_size:
            return f"LZ4 frame inflates beyond the declared {expected_raw_size} raw bytes"
        if not decompressor.eof:
            return "LZ4 frame is truncated"
        if decompressor.unused_data:
            return "unexpected bytes after the end of the LZ4 frame (one frame per chunk)"
    if len(out) != expected_raw_size:
        return f"LZ4 frame holds {len(out)} raw bytes but the chunk declares {expected_raw_size}"
    return out


def iter_file_chunks(path: Path, *, offset: int, chunk_bytes: int) -> Iterator[bytes]:
    """Yield a file's content from offset onwards in pieces of at most chunk_bytes."""
    if offset < 0:
        raise InvalidInput(f"offset must not be negative, got {offset}")
    if chunk_bytes <= 0:
        raise InvalidInput(f"chunk_bytes must be positive, got {chunk_bytes}")
    with open(path, "rb") as handle:
        handle.seek(offset)
        while True:
            piece = handle.read(chunk_bytes)
            if not piece:
                return
            yield piece
