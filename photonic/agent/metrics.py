"""The agent's Prometheus metrics, on an injected registry, or not recorded at all.

With no metrics port (the default) nobody can read an agent's metrics, so none are kept and
prometheus_client is never imported: its import (http.server, email, urllib) was ~40 ms of
every `agent --once` start, a tenth of a no-change re-sync.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from photonic.models import AgentState

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class CounterLike(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class GaugeLike(Protocol):
    def set(self, value: float) -> None: ...


class HistogramLike(Protocol):
    def observe(self, amount: float) -> None: ...


class LabelledCounter(Protocol):
    def labels(self, *labelvalues: str) -> CounterLike: ...


class LabelledGauge(Protocol):
    def labels(self, *labelvalues: str) -> GaugeLike: ...


class LabelledHistogram(Protocol):
    def labels(self, *labelvalues: str) -> HistogramLike: ...


class Unrecorded:
    """Every metric when there is no registry: accepts all updates and keeps none."""

    def labels(self, *_labelvalues: str) -> Unrecorded:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


class AgentMetrics:
    bytes_sent: CounterLike
    raw_bytes_sent: CounterLike
    files: LabelledCounter
    files_hashed: CounterLike
    queue_files: GaugeLike
    queue_bytes: GaugeLike
    state: LabelledGauge
    state_transitions: LabelledCounter
    sync_duration: LabelledHistogram
    reconnects: CounterLike

    def __init__(self, registry: CollectorRegistry | None, agent_id: str) -> None:
        self.registry = registry
        self.agent_id = agent_id
        if registry is None:
            off = Unrecorded()
            self.bytes_sent = self.raw_bytes_sent = self.files_hashed = self.reconnects = off
            self.queue_files = self.queue_bytes = off
            self.files = self.state_transitions = off
            self.state = off
            self.sync_duration = off
            return
        self._register(registry)

    def _register(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.bytes_sent = Counter(
            "photonic_agent_bytes_sent_total", "Chunk bytes written to the wire (after LZ4)",
            registry=registry)
        self.raw_bytes_sent = Counter(
            "photonic_agent_raw_bytes_sent_total", "Content bytes sent, before compression",
            registry=registry)
        self.files = Counter(
            "photonic_photos_processed_total",
            "Files the agent got acknowledged, by operation (uploaded, deduplicated, rejected, "
            "failed)", ["agent_id", "operation"], registry=registry)
        self.files_hashed = Counter(
            "photonic_agent_files_hashed_total", "Files hashed by scans", registry=registry)
        self.queue_files = Gauge(
            "photonic_agent_queue_files", "Files waiting to reach the server", registry=registry)
        self.queue_bytes = Gauge(
            "photonic_agent_queue_bytes", "Bytes waiting to reach the server", registry=registry)
        state = Gauge(
            "photonic_agent_state", "1 for the agent's current state", ["state"],
            registry=registry)
        self.state = state
        self.state_transitions = Counter(
            "photonic_agent_state_transitions_total", "State machine transitions",
            ["from_state", "to_state"], registry=registry)
        self.sync_duration = Histogram(
            "photonic_sync_duration_seconds", "Duration of one batch upload", ["agent_id"],
            registry=registry, buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
        self.reconnects = Counter(
            "photonic_agent_reconnects_total", "Connection attempts that failed",
            registry=registry)
        for s in AgentState:
            state.labels(s.value).set(0)
        build_info(registry)


def build_info(registry: CollectorRegistry) -> None:
    """`photonic_build_info{version, python} 1`, the same on every daemon."""
    import platform

    from prometheus_client import Gauge

    import photonic

    Gauge("photonic_build_info", "The running photonic version and Python", ["version", "python"],
          registry=registry).labels(photonic.__version__, platform.python_version()).set(1)
