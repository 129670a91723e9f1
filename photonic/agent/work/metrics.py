"""The worker's Prometheus metrics on an injected registry, or none kept when there is none
(as the agent's own metrics: no port, nobody reads them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from photonic.agent.metrics import (
    CounterLike,
    GaugeLike,
    LabelledCounter,
    LabelledHistogram,
    Unrecorded,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class WorkerMetrics:
    jobs: LabelledCounter
    job_duration: LabelledHistogram
    fetched_bytes: CounterLike
    running_jobs: GaugeLike

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            off = Unrecorded()
            self.jobs = self.job_duration = off
            self.fetched_bytes = self.running_jobs = off
            return
        from prometheus_client import Counter, Gauge, Histogram

        self.jobs = Counter(
            "photonic_worker_jobs_total", "Job attempts this worker ended, by kind and "
            "outcome (completed, failed, cancelled, released, dropped)", ["kind", "outcome"],
            registry=registry)
        self.job_duration = Histogram(
            "photonic_worker_job_duration_seconds", "Time from assignment to the end of an "
            "attempt", ["kind"], registry=registry,
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
        self.fetched_bytes = Counter(
            "photonic_worker_fetched_bytes_total", "Input bytes fetched from servers (local "
            "copies are not counted)", registry=registry)
        self.running_jobs = Gauge(
            "photonic_worker_running_jobs", "Jobs running now, across every server",
            registry=registry)
