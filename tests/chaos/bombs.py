"""LZ4 bombs: real LZ4 frames that inflate far beyond the raw size their chunk declares, in
every shape a hostile client can give them, and a reader of a process's resident memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lz4.frame

MIB = 1 << 20
_NO_SIZE_HEADER_BYTES = 7  # magic, FLG, BD, header checksum: the header of a frame without size


def _zeros_frame(total_bytes: int, *, block_size: int = lz4.frame.BLOCKSIZE_MAX4MB,
                 source_size: int = 0) -> bytes:
    """A frame of total_bytes zeros in blocks of block_size; its header declares source_size
    raw bytes (0: no content size at all)."""
    with lz4.frame.LZ4FrameCompressor(block_size=block_size) as compressor:
        return b"".join([compressor.begin(source_size=source_size),
                         compressor.compress(bytes(total_bytes)), compressor.flush()])


def huge_block(declared: int) -> bytes:
    """4 MiB of zeros in one 4 MiB block, with no content size in the header: a decoder that
    trusts the header allocates (and fills) a 4 MiB block buffer for a chunk of `declared`."""
    return _zeros_frame(4 * MIB)


def content_size_lie(declared: int) -> bytes:
    """A header that declares exactly the chunk's raw size, over blocks that hold 4 MiB."""
    header = lz4.frame.LZ4FrameCompressor(block_size=lz4.frame.BLOCKSIZE_MAX4MB).begin(
        source_size=declared)
    return header + _zeros_frame(4 * MIB)[_NO_SIZE_HEADER_BYTES:]


def concatenated(declared: int) -> bytes:
    """An honest frame of `declared` zeros followed by a second frame of 4 MiB."""
    honest = lz4.frame.compress(bytes(declared), store_size=True)
    return honest + _zeros_frame(4 * MIB)


def small_blocks_bomb(declared: int) -> bytes:
    """64 KiB blocks (the size honest agents use), no content size, 4 MiB of zeros."""
    return _zeros_frame(4 * MIB, block_size=lz4.frame.BLOCKSIZE_MAX64KB)


BOMBS: dict[str, Callable[[int], bytes]] = {
    "huge_block": huge_block,
    "content_size_lie": content_size_lie,
    "concatenated": concatenated,
    "small_blocks": small_blocks_bomb,
}
"""Each builds one chunk's LZ4 data for a chunk that declares the given raw size."""


def status_kib(pid: int, field: str) -> int:
    """A memory figure of a running process from /proc/<pid>/status (VmRSS, VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")
