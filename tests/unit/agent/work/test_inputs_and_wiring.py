"""InputStore's cache of fetched inputs (bounded in bytes, oldest first, never a file in use),
and the work service built from an agent config."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from photonic.agent.statedb import AgentStateDB
from photonic.agent.work.inputs import InputStore
from photonic.agent.work.metrics import WorkerMetrics
from photonic.agent.work.wiring import build_work_service
from photonic.config import load_agent_config
from tests.support.pki import TestPki
from tests.unit.test_config import write


def test_prune_drops_the_oldest_unused_inputs_beyond_the_bound(tmp_path: Path) -> None:
    """With room for two 10-byte files, the oldest unused ones go, a partial fetch no job
    resumes among them (it would stay for good otherwise); an input a job reads and a
    partial a job is fetching stay whatever their age."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    for age, name in enumerate(["d" * 64, "c" * 64, "e" * 64 + ".part", "b" * 64,
                                "f" * 64 + ".part", "a" * 64]):
        path = folder / name
        path.write_bytes(b"x" * 10)
        os.utime(path, (1000 - age * 100, 1000 - age * 100))
    store = InputStore(folder, lambda sha: [], WorkerMetrics(), cache_bytes=20)
    store._in_use["a" * 64] += 1  # the oldest, but a job reads it
    store._in_use["f" * 64] += 1  # being fetched

    asyncio.run(store.prune())
    assert sorted(p.name for p in folder.iterdir()) == [
        "a" * 64, "c" * 64, "d" * 64, "f" * 64 + ".part"]


def test_the_work_service_is_built_from_the_agent_config(tmp_path: Path, pki: TestPki) -> None:
    """build_work_service wires one channel per endpoint and the configured slots, and
    starts nothing (no executor child, no connection) until it runs."""
    config = load_agent_config(write(tmp_path, f"""\
agent:
  id: worker
  server_endpoints: [127.0.0.1:50051, 127.0.0.1:50052]
  buffer_path: buffer
  watch: [photos]
security:
  cert_path: {pki.agent_cert("worker")}
  key_path: {pki.agent_key("worker")}
  ca_path: {pki.ca}
work:
  enabled: true
  executors: [facecrop, lightroom]
  max_concurrent: 2
"""))
    db = AgentStateDB(tmp_path / "agent.db")

    async def main() -> None:  # gRPC channels are made on the loop that will use them
        service = build_work_service(config, db, None)
        assert service.sessions == [] and service.slots.max_concurrent == 2
        assert service.name == "work" and service.running == 0
        await service.close()

    try:
        asyncio.run(main())
    finally:
        db.close()
