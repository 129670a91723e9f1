"""The topology view: this server, the agents the catalog knows (and whether each is
connected now), and the workers whose Work streams are open on this server. What GET
/api/v1/topology answers; one server for now, a list so that several sharing one catalog
can be shown once they exist."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from photonic.server.catalog_agents import AgentRow
from photonic.server.jobs.dispatch import WorkerView

AGENT_HEARTBEAT_S = 10.0
"""The agent's heartbeat interval (photonic.agent.sync_service.HEARTBEAT_INTERVAL_S; the
server cannot import the agent): an agent seen within two of them is connected."""


class AgentCatalog(Protocol):
    def agent_ids(self) -> list[str]: ...
    def get_agent(self, agent_id: str) -> AgentRow | None: ...


@dataclass(frozen=True)
class ServerNode:
    name: str
    """The subject CN of the server's certificate."""
    grpc: str
    """The gRPC address it binds."""
    version: str
    self: bool = True


@dataclass(frozen=True)
class AgentNode:
    agent_id: str
    state: str
    server: str
    last_seen_ms: int
    connected: bool


@dataclass(frozen=True)
class WorkerNode:
    worker_id: str
    capabilities: tuple[str, ...]
    slots: int
    running: tuple[str, ...]


@dataclass(frozen=True)
class TopologySnapshot:
    servers: tuple[ServerNode, ...]
    agents: tuple[AgentNode, ...]
    workers: tuple[WorkerNode, ...]


class Topology:
    def __init__(self, this: ServerNode, catalog: AgentCatalog,
                 workers: Callable[[], list[WorkerView]], *,
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        """workers: the dispatcher's snapshot (empty before the jobs service starts)."""
        self._this = this
        self._catalog = catalog
        self._workers = workers
        self._clock_ms = clock_ms

    async def snapshot(self) -> TopologySnapshot:
        rows = await asyncio.to_thread(self._agents)
        now = self._clock_ms()
        window_ms = int(2 * AGENT_HEARTBEAT_S * 1000)
        agents = tuple(AgentNode(r.agent_id, r.state, self._this.name, r.last_seen_ms,
                                 now - r.last_seen_ms <= window_ms) for r in rows)
        workers = tuple(WorkerNode(w.worker_id, w.capabilities, w.slots, w.running)
                        for w in self._workers())
        return TopologySnapshot((self._this,), agents, workers)

    def _agents(self) -> list[AgentRow]:
        rows = (self._catalog.get_agent(a) for a in self._catalog.agent_ids())
        return [r for r in rows if r is not None]
