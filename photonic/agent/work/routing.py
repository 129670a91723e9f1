"""The worker's executors as one pool: bgremove and facecrop in child processes, `lightroom`
through the bridge to a plugin. probe() says what runs now, and on_change() tells the work
service when that changes (a plugin registered or went away), so it says Hello again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from photonic.agent.executors.base import Execution, ExecutorError, ExecutorInfo, JobTicket
from photonic.agent.executors.lightroom import NAME as LIGHTROOM
from photonic.agent.executors.lightroom import Bridge, LightroomExecutor
from photonic.agent.work.seams import ExecutorPool


class ManagedBridge(Bridge, Protocol):
    async def start(self) -> int: ...

    async def stop(self) -> None: ...


class RoutingPool:
    def __init__(self, children: ExecutorPool, bridge: ManagedBridge | None) -> None:
        self._children = children
        self._bridge = bridge
        self._lightroom = LightroomExecutor(bridge) if bridge is not None else None
        self._started = False
        self.bridge_port = 0

    async def probe(self) -> list[ExecutorInfo]:
        """The child executors that load, and lightroom while a plugin is registered. The
        bridge starts at the first probe (the work service's start)."""
        infos = await self._children.probe()
        if self._bridge is not None and not self._started:
            self.bridge_port = await self._bridge.start()
            self._started = True
        info = self._lightroom.info() if self._lightroom is not None else None
        return [*infos, info] if info is not None else infos

    def on_change(self, callback: Callable[[], None]) -> None:
        self._children.on_change(callback)
        if self._bridge is not None:
            self._bridge.on_change(callback)

    async def run(self, kind: str, input_path: Path, output_dir: Path,
                  params: Mapping[str, object], *, timeout_s: float,
                  ticket: JobTicket | None = None) -> Execution:
        if kind != LIGHTROOM:
            return await self._children.run(kind, input_path, output_dir, params,
                                            timeout_s=timeout_s, ticket=ticket)
        if self._lightroom is None:
            raise ExecutorError("lightroom is not enabled on this worker", retryable=True)
        try:  # cancelling the run tells the plugin job_cancelled
            return await asyncio.wait_for(
                self._lightroom.run(input_path, output_dir, params, ticket), timeout_s)
        except TimeoutError:
            raise ExecutorError(f"Lightroom did not finish within {timeout_s:.0f} s",
                                retryable=True) from None

    async def close(self) -> None:
        await self._children.close()
        if self._bridge is not None and self._started:
            await self._bridge.stop()
