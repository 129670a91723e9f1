"""The server's Prometheus metrics, on an injected registry so every test reads its own."""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Callable, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

import photonic
from photonic.jobs_model import Job, JobState
from photonic.server.metrics_tap import TappedCounter


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.photos_processed = Counter(
            "photonic_photos_processed_total",
            "Paths recorded by the server, by agent and operation (stored, deduplicated, "
            "rejected, failed, conflict)",
            ["agent_id", "operation"], registry=registry)
        self.sync_duration = Histogram(
            "photonic_sync_duration_seconds", "Duration of one SyncBatch stream",
            ["agent_id"], registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
        self.bytes_received = TappedCounter(Counter(
            "photonic_server_bytes_received_total", "Chunk bytes received on the wire",
            ["agent_id"], registry=registry))
        """Tapped: each agent's receive rate (server/receive_rates.py) follows it."""
        self.bytes_stored = Counter(
            "photonic_server_bytes_stored_total", "Raw content bytes verified and stored",
            ["agent_id"], registry=registry)
        self.dedup_hits = Counter(
            "photonic_server_dedup_hits_total", "Manifest entries answered HAVE",
            ["agent_id"], registry=registry)
        self.active_syncs = Gauge(
            "photonic_server_active_syncs", "SyncBatch streams open now", registry=registry)
        self.storage_free_bytes = Gauge(
            "photonic_server_storage_free_bytes", "Free bytes on the storage filesystem",
            registry=registry)
        self.storage_full = Gauge(
            "photonic_server_storage_full",
            "1 while intake is stopped because the storage is (nearly) full", registry=registry)
        self.integrity_failures = Counter(
            "photonic_server_integrity_failures_total",
            "Uploads discarded because size or SHA-256 did not match", ["agent_id"],
            registry=registry)
        self.objects_quarantined = Counter(
            "photonic_server_objects_quarantined_total",
            "Stored objects found damaged (size or SHA-256 no longer match) and quarantined",
            registry=registry)
        self.objects_rehashed = Counter(
            "photonic_server_objects_rehashed_total",
            "Stored objects re-hashed before a HAVE was trusted (unverified or changed)",
            registry=registry)
        self.audit_rows_dropped = Counter(
            "photonic_server_audit_rows_dropped_total",
            "Audit rows not written: a caller over its budget (rate) or the disk under its "
            "reserve (disk)", ["reason"], registry=registry)
        self.refused_calls = Counter(
            "photonic_server_refused_calls_total", "Calls refused, by reason",
            ["reason"], registry=registry)
        self.agent_state = Gauge(
            "photonic_agent_state_info", "1 for the state each agent last reported",
            ["agent_id", "state"], registry=registry)
        self.job_transitions = Counter(
            "photonic_jobs_transitions_total", "Jobs entering each state, by kind",
            ["kind", "state"], registry=registry)
        self.jobs_by_state = Gauge(
            "photonic_jobs", "Jobs in each state now, by kind (read at each scrape)",
            ["state", "kind"], registry=registry)
        self.lease_expiries = Counter(
            "photonic_jobs_lease_expiries_total",
            "Leases that expired (the worker stopped answering) and were handed back, by kind",
            ["kind"], registry=registry)
        self.job_dispatch_latency = Histogram(
            "photonic_jobs_dispatch_latency_seconds",
            "From a job becoming runnable (submitted or handed back) to its lease",
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5, 30))
        self.job_duration = Histogram(
            "photonic_jobs_duration_seconds", "From lease to completion, by kind", ["kind"],
            registry=registry, buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
        self.blob_bytes_sent = Counter(
            "photonic_jobs_fetch_blob_bytes_total", "Input bytes streamed to workers by "
            "FetchBlob", registry=registry)
        self.result_bytes_received = Counter(
            "photonic_jobs_result_bytes_total", "Output bytes received by UploadResult",
            registry=registry)
        self.workers_connected = Gauge(
            "photonic_jobs_workers_connected", "Work streams open now", registry=registry)
        self.conflicts_open = Gauge(
            "photonic_conflicts_open", "Conflicts parked for an admin (read at each scrape)",
            registry=registry)
        self.agent_bytes_pending = Gauge(
            "photonic_agent_bytes_pending", "Bytes each agent last reported waiting to sync",
            ["agent_id"], registry=registry)
        self.agent_queue_depth = Gauge(
            "photonic_agent_queue_depth_files",
            "Files each agent last reported waiting to sync", ["agent_id"], registry=registry)
        self.web_clients = Gauge(
            "photonic_web_clients", "Dashboard live connections open now, by transport "
            "(websocket, longpoll)", ["transport"], registry=registry)
        for transport in ("websocket", "longpoll"):  # shown as 0 before the first one
            self.web_clients.labels(transport)
        build_info(registry)

    def count_lease_expiries(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            self.lease_expiries.labels(job.kind).inc()


def build_info(registry: CollectorRegistry) -> None:
    """`photonic_build_info{version, python} 1`, the same on every daemon."""
    Gauge("photonic_build_info", "The running photonic version and Python", ["version", "python"],
          registry=registry).labels(photonic.__version__, platform.python_version()).set(1)


class ScrapeSources(Protocol):
    def state_counts_by_kind(self) -> dict[tuple[str, str], int]: ...


class ScrapeReadings:
    """The gauges that are read, not counted: set just before each scrape, reading SQLite
    and the disk in threads."""

    def __init__(self, metrics: ServerMetrics, jobs: ScrapeSources,
                 conflicts_open: Callable[[], int], free_bytes: Callable[[], int]) -> None:
        self._m = metrics
        self._jobs = jobs
        self._conflicts_open = conflicts_open
        self._free_bytes = free_bytes
        self._kinds: set[str] = set()

    async def refresh(self) -> None:
        self._m.storage_free_bytes.set(await asyncio.to_thread(self._free_bytes))
        self._m.conflicts_open.set(await asyncio.to_thread(self._conflicts_open))
        counts = await asyncio.to_thread(self._jobs.state_counts_by_kind)
        self._kinds.update(kind for _state, kind in counts)
        for kind in self._kinds:  # a kind seen once keeps reporting, 0 when it has no jobs
            for state in JobState:
                self._m.jobs_by_state.labels(state.value, kind).set(
                    counts.get((state.value, kind), 0))
