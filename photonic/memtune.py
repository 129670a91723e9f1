"""Keeps the memory of freed transfer buffers in the process instead of returning it to the
kernel at once.

Every chunk crosses several short-lived buffers of up to a few MiB (file reads, gRPC byte
buffers, LZ4 output). With glibc's defaults, buffers that large are mmapped and unmapped one
by one, and a freed heap top is trimmed back, so every new buffer costs page faults and the
kernel zeroing fresh pages. Profiles of a 1.2 GB sync showed a third of both daemons' CPU in
those faults and copies (bench/README.md). Raising the two thresholds lets glibc reuse the
same pages; peak memory is unchanged (it is set by the buffers in flight), memory is simply
handed back later.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

MMAP_THRESHOLD_BYTES = 16 << 20
"""Above every transfer buffer (at most a 5 MiB message), within glibc's 32 MiB maximum."""

TRIM_THRESHOLD_BYTES = 32 << 20
"""Free memory each heap keeps before trimming: eight 4 MiB transfer buffers. 128 MiB measured
no faster on the large set and kept more memory."""

ARENA_MAX = 2
"""glibc gives threads up to 8 heaps ("arenas") per core, and the two thresholds above apply
to each: with worker threads reading 4 MiB chunks in their own arenas, the agent's peak RSS
on a 1.2 GB sync was 207-221 MB instead of ~130. Python allocates under the GIL, so few
arenas cost no contention that could be measured (large set: 3.6 s either way)."""


def keep_freed_buffers() -> bool:
    """Applies the thresholds on Linux with glibc; True when they took effect. Elsewhere (macOS,
    musl) it does nothing: their allocators have neither knob."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = _libc()
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
                and mallopt(_M_ARENA_MAX, ARENA_MAX))


def _libc() -> ctypes.CDLL:
    """glibc by its fixed name first: find_library runs `ldconfig -p` in a subprocess, 2-4 ms
    of every daemon start (and of a no-change `agent --once`), to find that very name."""
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
