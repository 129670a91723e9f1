"""The allocator settings the daemons apply: freed transfer buffers are reused, not faulted in
again. Measured as page faults in a fresh interpreter, since the settings are process-wide."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, random, resource, sys, threading
from photonic.memtune import keep_freed_buffers
applied = keep_freed_buffers() if sys.argv[1] == "tuned" else False

def transfer(seed):  # a worker thread's buffers: mixed sizes up to a full message
    rng = random.Random(seed)
    for _ in range(40):
        held = [bytearray(rng.randint(1 << 18, 5 << 20)) for _ in range(3)]
        del held

def round_of_threads():
    threads = [threading.Thread(target=transfer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

round_of_threads()  # warm up: the heaps grow to what the work needs
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
round_of_threads()
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"applied": applied, "faults": after - before}))
"""


def _faults(mode: str) -> dict[str, int | bool]:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                         check=True).stdout
    result: dict[str, int | bool] = json.loads(out)
    return result


def test_freed_buffers_are_reused_instead_of_faulted_in_again() -> None:
    default, tuned = _faults("default"), _faults("tuned")
    assert tuned["applied"] is True, "glibc's mallopt was not applied on this Linux machine"
    # By default glibc maps and unmaps many of these buffers (about 140,000 faults here); tuned,
    # the second round reuses the first one's pages.
    assert int(default["faults"]) > 20_000, default
    assert int(tuned["faults"]) < int(default["faults"]) // 20, (default, tuned)


_ARENA_PROBE = """
import ctypes, json, sys, tempfile, threading
from photonic.memtune import keep_freed_buffers
applied = keep_freed_buffers() if sys.argv[1] == "tuned" else False
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)

def churn():  # ctypes drops the GIL around each call: these threads contend, as gRPC's do
    for _ in range(20000):
        libc.free(libc.malloc(1 << 16))

threads = [threading.Thread(target=churn) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    f = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, f)
    libc.fclose(f)
    arenas = open(out.name).read().count("<heap nr=")
print(json.dumps({"applied": applied, "arenas": arenas}))
"""


def _arenas(mode: str) -> dict[str, int | bool]:
    out = subprocess.run([sys.executable, "-c", _ARENA_PROBE, mode], capture_output=True,
                         text=True, check=True).stdout
    result: dict[str, int | bool] = json.loads(out)
    return result


def test_threads_share_few_heaps_so_kept_buffers_stay_bounded() -> None:
    """Each glibc heap keeps up to the trim threshold of freed memory; with a heap per busy
    thread the agent's peak RSS on a large sync rose from ~130 MB to ~215 MB."""
    default, tuned = _arenas("default"), _arenas("tuned")
    assert int(default["arenas"]) > 2, f"8 contending threads made only {default} heaps"
    assert tuned["applied"] is True
    assert int(tuned["arenas"]) <= 2, tuned
