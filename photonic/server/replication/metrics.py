"""The replication metrics, on the server's registry: lag and backlog per node are read at
scrape time from the last backlog each node's loop measured (no query per scrape)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from photonic.server.replication.queue import Backlog


class ReplicationMetrics:
    def __init__(self, registry: CollectorRegistry,
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._clock_ms = clock_ms
        self._backlogs: dict[str, Backlog] = {}
        self.lag = Gauge("photonic_replication_lag_seconds",
                         "Age of the oldest version a backup node has not confirmed (0 when "
                         "it holds everything)", ["node"], registry=registry)
        self.bytes_pending = Gauge("photonic_replication_bytes_pending",
                                   "Bytes of content a backup node does not hold yet",
                                   ["node"], registry=registry)
        self.confirmed = Counter("photonic_replication_objects_confirmed_total",
                                 "Versions a backup node confirmed holding durably (stored or "
                                 "already held)", ["node"], registry=registry)
        self.bytes_sent = Counter("photonic_replication_bytes_sent_total",
                                  "Content bytes sent to a backup node (before any compression)",
                                  ["node"], registry=registry)

    def watch(self, node: str) -> None:
        """Exports node's lag and backlog from the start (as 0 until first measured)."""
        self._backlogs.setdefault(node, Backlog(0, 0, 0))
        self.lag.labels(node).set_function(lambda: self.lag_s(node))
        self.bytes_pending.labels(node).set_function(
            lambda: float(self._backlogs[node].bytes_pending))
        self.confirmed.labels(node)
        self.bytes_sent.labels(node)

    def measured(self, node: str, backlog: Backlog) -> None:
        self._backlogs[node] = backlog

    def backlog(self, node: str) -> Backlog:
        return self._backlogs.get(node, Backlog(0, 0, 0))

    def lag_s(self, node: str) -> float:
        oldest = self._backlogs[node].oldest_created_ms
        return max(0.0, (self._clock_ms() - oldest) / 1000) if oldest else 0.0
