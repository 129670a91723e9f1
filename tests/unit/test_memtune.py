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
