"""The agent's Prometheus metrics, on an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from photonic.models import AgentState


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry, agent_id: str) -> None:
        self.registry = registry
        self.agent_id = agent_id
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
        self.state = Gauge(
            "photonic_agent_state", "1 for the agent's current state", ["state"],
            registry=registry)
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
            self.state.labels(s.value).set(0)
