"""The replication side of a server, as app.py wires it: one Replicator per backup node, the
queue they share, and the copy counts the safety view and photo details show."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from photonic.config import ServerConfig
from photonic.server.events import EventHub
from photonic.server.replication.metrics import ReplicationMetrics
from photonic.server.replication.nodes import NodeDialer
from photonic.server.replication.queue import ReplicationQueue
from photonic.server.replication.replicator import Replicator
from photonic.server.replication.wakeups import CommitWakeups
from photonic.server.store import ContentStore


@dataclass(frozen=True)
class NodeStatus:
    """One backup node as status pages show it."""

    name: str
    endpoint: str
    versions_pending: int
    bytes_pending: int
    lag_s: float


class ReplicationService:
    def __init__(self, config: ServerConfig, store: ContentStore, events: EventHub,
                 registry: CollectorRegistry) -> None:
        nodes = config.replication.backup_nodes
        self.min_copies = config.replication.min_copies
        self.queue = ReplicationQueue(config.storage_path / "catalog.db",
                                      [n.name for n in nodes])
        self.metrics = ReplicationMetrics(registry)
        self._replicators: list[Replicator] = []
        if nodes:
            dialer = NodeDialer(config.security)
            wakeups = CommitWakeups(events)
            self._replicators = [
                Replicator(dialer.node(n), self.queue, dialer, store.objects, store.object_file,
                           wakeups, self.metrics) for n in nodes]

    def start(self) -> None:
        for r in self._replicators:
            r.start()

    async def stop(self) -> None:
        await asyncio.gather(*(r.stop() for r in self._replicators))
        self.queue.close()

    def copies_of(self, shas: Sequence[str]) -> dict[str, int]:
        """Blocking: copies of each content, this server's included."""
        return self.queue.copies_of(shas)

    def safe_photos(self, agent_id: str) -> int:
        """Blocking: how many of agent_id's photos (current versions) have min_copies."""
        return self.queue.safe_heads(agent_id, self.min_copies)

    def nodes(self) -> list[NodeStatus]:
        out: list[NodeStatus] = []
        for r in self._replicators:
            backlog = self.metrics.backlog(r.node.name)
            out.append(NodeStatus(r.node.name, r.node.config.endpoint, backlog.versions,
                                  backlog.bytes_pending, self.metrics.lag_s(r.node.name)))
        return out
