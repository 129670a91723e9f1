"""The replication side of a server, as app.py wires it: one Replicator per backup node, the
queue they share, and the copy counts the safety view and photo details show."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from photonic.archive_key import ArchiveKey, load_key
from photonic.config import ServerConfig
from photonic.errors import ConfigError, ConfigProblem
from photonic.server.events import EventHub
from photonic.server.replication.metrics import ReplicationMetrics
from photonic.server.replication.nodes import NodeDialer
from photonic.server.replication.queue import ReplicationQueue
from photonic.server.replication.replicator import Replicator
from photonic.server.replication.sealed import SealedSpool
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
    encrypted: bool = False
    key_fingerprint: str = ""  # the archive key's, for an encrypted node
    connected: bool = False
    last_error: str = ""
    objects_confirmed: int = 0  # distinct contents the node confirmed holding

    @property
    def key_warning(self) -> str:
        """What an encrypted node's copy depends on, in words (empty for a plain node)."""
        if not self.encrypted:
            return ""
        return (f"encrypted with {self.key_fingerprint}; without this key that copy cannot be "
                "read — back it up")


class ReplicationService:
    def __init__(self, config: ServerConfig, store: ContentStore, events: EventHub,
                 registry: CollectorRegistry) -> None:
        nodes = config.replication.backup_nodes
        self.min_copies = config.replication.min_copies
        self.queue = ReplicationQueue(config.storage_path / "catalog.db",
                                      [n.name for n in nodes])
        self.metrics = ReplicationMetrics(registry)
        self._replicators: list[Replicator] = []
        self.archive_key: ArchiveKey | None = None
        if any(n.encrypted for n in nodes) and config.security.archive_key_path is not None:
            self.archive_key = load_key(config.security.archive_key_path)
        if nodes:
            dialer = NodeDialer(config.security)
            wakeups = CommitWakeups(events)
            self._replicators = [
                Replicator(dialer.node(n), self.queue, dialer, store.objects, store.object_file,
                           wakeups, self.metrics, sealer=self._sealer(store, n.name)
                           if n.encrypted else None) for n in nodes]

    def _sealer(self, store: ContentStore, node: str) -> SealedSpool:
        if self.archive_key is None:  # the config check refuses this before
            raise ConfigError([ConfigProblem("", "security.archive_key_path",
                                             "the archive key of an encrypted backup node")])
        return SealedSpool(Path(store.partial) / "sealed" / node, self.archive_key)

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

    def backup_notes(self) -> list[str]:
        """A sentence per node whose copy depends on something a person must keep: the
        archive key of an encrypted node (`photonic status --remote` prints them)."""
        fingerprint = self.archive_key.fingerprint if self.archive_key else ""
        return [f"backup node {r.node.name}: " + NodeStatus(
                    r.node.name, r.node.config.endpoint, 0, 0, 0.0, True, fingerprint).key_warning
                for r in self._replicators if r.node.config.encrypted]

    def nodes(self) -> list[NodeStatus]:
        """Blocking (reads the confirmation counts)."""
        out: list[NodeStatus] = []
        fingerprint = self.archive_key.fingerprint if self.archive_key else ""
        for r in self._replicators:
            backlog = self.metrics.backlog(r.node.name)
            encrypted = r.node.config.encrypted
            out.append(NodeStatus(
                r.node.name, r.node.config.endpoint, backlog.versions, backlog.bytes_pending,
                self.metrics.lag_s(r.node.name), encrypted, fingerprint if encrypted else "",
                r.connected, r.last_error, self.queue.confirmed_count(r.node.name)))
        return out
