"""InputStore's cache of fetched inputs: bounded in bytes, oldest first, never a file in use."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from photonic.agent.work.inputs import InputStore
from photonic.agent.work.metrics import WorkerMetrics


def test_prune_drops_the_oldest_unused_inputs_beyond_the_bound(tmp_path: Path) -> None:
    """With room for two 10-byte inputs, the oldest unused one goes; one in use and a
    partial fetch (resumable) stay whatever their age."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    for age, name in enumerate(["d" * 64, "c" * 64, "b" * 64, "a" * 64]):
        path = folder / name
        path.write_bytes(b"x" * 10)
        os.utime(path, (1000 - age * 100, 1000 - age * 100))
    (folder / ("e" * 64 + ".part")).write_bytes(b"x" * 10)
    store = InputStore(folder, lambda sha: [], WorkerMetrics(), cache_bytes=20)
    store._in_use["a" * 64] += 1  # the oldest, but a job reads it

    asyncio.run(store.prune())
    assert sorted(p.name[:1] for p in folder.iterdir()) == ["a", "c", "d", "e"]
