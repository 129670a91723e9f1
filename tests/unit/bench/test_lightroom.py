"""The Lightroom bridge benchmark's arithmetic: per-job latencies from the two clocks, the
bridge's queue times from the agent's log, the split at the bridge, and the figure's rows."""

from __future__ import annotations

import pytest

from bench.lightroom import (
    LightroomFigure,
    bridge_queued_times,
    figure_specs,
    job_latencies,
    lightroom_shape,
    lightroom_values,
    raw_samples,
    split_at_bridge,
)
from bench.report import PHOTONIC, build_rows

AGENT_LOG = "\n".join([
    'ts=2026-12-06T10:00:00.105Z level=info logger=photonic.lightroom '
    'msg="lightroom client=c1 job=j1 attempt=1 assigned"',
    'ts=2026-12-06T10:00:00.200Z level=info logger=photonic.lightroom '
    'msg="lightroom client=c1 registered lightroom=13.2"',
    'ts=2026-12-06T10:00:01.000Z level=info logger=photonic.lightroom '
    'msg="lightroom client=c1 job=j2 attempt=1 assigned"',
    'ts=2026-12-06T10:00:03.000Z level=info logger=photonic.lightroom '
    'msg="lightroom client=c2 job=j2 attempt=2 assigned"',
    'not a log line',
])
T0 = 1796551200.0  # 2026-12-06T10:00:00Z


def test_job_latencies_take_the_lease_in_ms_and_the_client_times_in_s() -> None:
    """lease -> plugin and submit -> plugin, both in ms; a job never leased is an error."""
    lease, submit = job_latencies(100.000, 100_004, 100.0105)
    assert lease == pytest.approx(6.5)
    assert submit == pytest.approx(10.5)
    with pytest.raises(ValueError):
        job_latencies(100.0, 0, 100.1)


def test_bridge_queue_times_come_from_the_assigned_lines_the_last_attempt_winning() -> None:
    """Only `... job=<id> attempt=N assigned` lines count; a re-assignment replaces the
    earlier one, since the lease read after the job ended is the last attempt's."""
    queued = bridge_queued_times(AGENT_LOG)
    assert queued == {"j1": pytest.approx(T0 + 0.105), "j2": pytest.approx(T0 + 3.0)}


def test_split_at_bridge_adds_up_to_the_lease_to_plugin_time() -> None:
    """lease -> bridge plus bridge -> plugin is lease -> plugin; jobs missing from the log
    are left out of the split."""
    figure = LightroomFigure(received=[("j1", int(T0 * 1000) + 100, T0 + 0.108),
                                       ("j9", int(T0 * 1000), T0 + 1)])
    split_at_bridge(figure, bridge_queued_times(AGENT_LOG))
    assert figure.lease_to_bridge_ms == [pytest.approx(5.0, abs=1e-3)]
    assert figure.bridge_to_plugin_ms == [pytest.approx(3.0, abs=1e-3)]


def test_values_have_rows_and_the_goal_is_on_the_lease_p50() -> None:
    """Every value lands in a row; the 50 ms goal judges lease -> plugin's median."""
    figure = LightroomFigure([4.0, 5.0, 60.0], [6.0, 7.0, 70.0], [1.0], [3.0])
    values = lightroom_values(figure)
    specs = figure_specs(lightroom_shape(quick=True))
    assert set(values) <= {spec.key for spec in specs}
    assert values["lightroom.lease.p50"] == [5.0]
    samples = {(PHOTONIC, k): v for k, v in values.items()}
    rows = {row.figure: row for row in build_rows(specs, samples)}
    [goal] = [row for row in rows.values() if row.target is not None]
    assert "lease on the server" in goal.figure and "p50" in goal.figure
    assert goal.met is True
    assert raw_samples(figure)["lightroom.lease.all"] == [4.0, 5.0, 60.0]
    assert lightroom_values(LightroomFigure()) == {}


def test_quick_runs_fewer_jobs() -> None:
    """100 jobs in full, 20 in quick."""
    assert (lightroom_shape(quick=False).jobs, lightroom_shape(quick=True).jobs) == (100, 20)
