"""A real bridge on 127.0.0.1:0 in a temporary folder, and clients for it, for the bridge's
unit tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from photonic.lightroom.bridge import LightroomBridge
from photonic.lightroom.secret import load_or_make_secret
from tests.support.bridge_client import BridgeClient


@dataclass
class World:
    bridge: LightroomBridge
    url: str
    secret: str
    jobs_dir: Path
    progress: list[tuple[float, str]] = field(default_factory=list)
    clients: list[BridgeClient] = field(default_factory=list)

    def client(self, secret: str | None = "") -> BridgeClient:
        client = BridgeClient(self.url, self.secret if secret == "" else secret)
        self.clients.append(client)
        return client

    async def plugin(self, version: str = "13.2", catalog: str = "Main") -> BridgeClient:
        """A client that hand-shook, registered and subscribed to jobs, its queue drained."""
        client = self.client()
        await client.handshake()
        await client.register(version, catalog)
        await client.subscribe("jobs", "system")
        await client.poll()
        return client

    def run_job(self, job_id: str = "job-1", attempt: int = 1
                ) -> asyncio.Task[list[Path]]:
        return asyncio.create_task(self.bridge.run_job(
            job_id, attempt, Path("/photos/in.dng"), {"preset": "Vivid"},
            {"format": "JPEG", "long_edge": 2048, "quality": 90},
            lambda f, m: self.progress.append((f, m))))


async def jobs_held(client: BridgeClient, count: int = 1, total: bool = False) -> None:
    """Waits until the bridge shows this client (or all clients, total) holding count jobs:
    run_job has offered them."""
    deadline = time.monotonic() + 10
    while True:
        rows = (await client.status())["clients"]
        assert isinstance(rows, list)
        held = sum(int(r["jobs"]) for r in rows if total or r["client_id"] == client.client_id)
        if held == count:
            return
        assert time.monotonic() < deadline, f"never {count} jobs held"


@asynccontextmanager
async def bridge_world(tmp_path: Path, client_timeout_s: float = 300.0
                       ) -> AsyncIterator[World]:
    secret = load_or_make_secret(tmp_path / "buffer")
    bridge = LightroomBridge(secret, port=0, jobs_dir=tmp_path / "jobs",
                             client_timeout_s=client_timeout_s)
    port = await bridge.start()
    world = World(bridge, f"http://127.0.0.1:{port}", secret, tmp_path / "jobs")
    try:
        yield world
    finally:
        for client in world.clients:
            await client.close()
        await bridge.stop()
