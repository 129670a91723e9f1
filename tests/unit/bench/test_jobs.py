"""The jobs benchmark's arithmetic: the overhead share, reading state times from the server's
log, and the figure's samples."""

from __future__ import annotations

import pytest

from bench.jobs import (
    BatchFigure,
    JobsFigure,
    figure_specs,
    jobs_shape,
    jobs_values,
    overhead_share,
    state_times,
)

LOG = "\n".join([
    'ts=2026-12-06T10:00:00.100Z level=info logger=photonic.server.jobs msg=job_state '
    'event=job_state job=j1 kind=bgremove state=READING worker=w1 attempt=1',
    'ts=2026-12-06T10:00:00.250Z level=info logger=photonic.server.jobs msg=job_state '
    'event=job_state job=j1 kind=bgremove state=PROCESSING worker=w1 attempt=1',
    'ts=2026-12-06T10:00:05.000Z level=info logger=photonic.server.jobs msg=job_state '
    'event=job_state job=j1 kind=bgremove state=READING worker=w2 attempt=2',
    'ts=2026-12-06T10:00:06.000Z level=info logger=photonic.server.jobs msg=job_state '
    'event=job_state job=j1 kind=bgremove state=PROCESSING worker=w2 attempt=2',
    'ts=2026-12-06T10:00:06.500Z level=info msg="not a job" event=file_committed path=a.jpg',
])


def test_overhead_share_is_the_wall_time_outside_the_attempts() -> None:
    """10 s of wall time with 9.5 s in attempts is 5 % overhead; never below 0; no wall time
    is a programming error."""
    assert overhead_share(10.0, 9.5) == pytest.approx(0.05)
    assert overhead_share(10.0, 10.5) == 0.0
    with pytest.raises(ValueError):
        overhead_share(0.0, 1.0)


def test_state_times_take_the_first_line_per_job_and_filter_by_worker() -> None:
    """The first PROCESSING of j1 (attempt 1), and with a worker given, that worker's line."""
    first = state_times(LOG, "PROCESSING")
    second = state_times(LOG, "READING", "w2")
    assert list(first) == ["j1"] and list(second) == ["j1"]
    assert second["j1"] - first["j1"] == pytest.approx(4.75)
    assert state_times(LOG, "COMPLETED") == {}


def test_jobs_values_summarise_each_measured_part_only() -> None:
    """Percentiles of the latencies, throughput and overhead of the batch, failures counted;
    a part not measured (no recovery) leaves its key out."""
    batch = BatchFigure(photos=200, completed=198, wall_s=20.0, executor_s=19.0,
                        outside_attempt_ms=[3.0, 5.0, 4.0], between_jobs_ms=[1.0, 2.0])
    figure = JobsFigure(dispatch_ms=[1.0, 2.0, 3.0, 4.0, 5.0], batches={"batch": batch})
    values = jobs_values(figure)
    assert values["jobs.dispatch.p50"] == [3.0]
    assert values["jobs.dispatch.p95"] == [pytest.approx(4.8)]
    assert values["jobs.batch.jobs_per_s"] == [pytest.approx(9.9)]
    assert values["jobs.batch.overhead_pct"] == [pytest.approx(5.0)]
    assert values["jobs.batch.failed"] == [2.0]
    assert values["jobs.batch.outside_attempt_ms"] == [4.0]
    assert values["jobs.batch.between_jobs_ms"] == [1.5]
    assert set(values) <= {spec.key for spec in figure_specs(jobs_shape(quick=False))}
    assert "jobs.recovery.s" not in values and "jobs.agent_start.p50" not in values
