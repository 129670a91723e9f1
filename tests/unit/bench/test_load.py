"""Unit tests of the load figures' pure parts: shares, limits, percentiles, rows and checks."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from bench import load, run
from bench.figures import load_figure_specs
from bench.load_client import Tally, soft_limit_for
from bench.procstat import (
    CpuSample,
    RssSampler,
    read_machine_cpu,
    read_open_files_limit,
    read_rss_bytes,
)
from bench.report import PHOTONIC, build_rows, markdown_table


def test_split_evenly_keeps_order_and_loses_nothing() -> None:
    """Every item lands in exactly one share, in order, and shares differ by at most one."""
    items = list(range(23))
    shares = load.split_evenly(items, 5)
    assert [len(s) for s in shares] == [5, 5, 5, 4, 4]
    assert [i for share in shares for i in share] == items
    assert load.split_evenly([1, 2], 4) == [[1], [2], [], []]
    with pytest.raises(ValueError):
        load.split_evenly(items, 0)


def test_quick_shape_is_smaller_and_the_set_holds_every_agents_photos() -> None:
    """Quick mode keeps both figures but shrinks them; the set has one share per agent."""
    full, quick = load.load_shape(quick=False), load.load_shape(quick=True)
    assert (full.syncing_agents, full.idle_agents) == (20, 1000)
    assert quick.syncing_agents < full.syncing_agents and quick.idle_agents < full.idle_agents
    spec = load.load_set_spec(full)
    assert spec.count == full.syncing_agents * full.photos_per_agent
    assert full.pki_agents == 1000


def test_server_limits_admit_every_agent_and_their_streams() -> None:
    """The generated limits leave room for all agents and four streams each."""
    limits = load.server_limits(1000)
    assert limits["max_agents"] >= 1000  # type: ignore[operator]
    assert load.server_limits(20)["max_concurrent_syncs"] == 80


def test_soft_open_files_limit_is_raised_to_the_hard_limit_only_when_short() -> None:
    """A soft limit that covers the need stays; a short one goes to the hard limit, which
    may still be short; an unlimited hard limit gives exactly what is needed."""
    inf = resource.RLIM_INFINITY
    assert soft_limit_for(4096, 8192, 1200) == 4096
    assert soft_limit_for(1024, 8192, 1200) == 8192
    assert soft_limit_for(1024, 1100, 1200) == 1100
    assert soft_limit_for(1024, inf, 1200) == 1200
    assert soft_limit_for(inf, inf, 1200) == inf


def test_open_files_note_says_whether_every_side_can_hold_the_connections() -> None:
    """The printed note names each side's limits and any side too low for the agents."""
    figure = load.IdleFigure(1000, 1000, [], [], [], [], [], {}, 0, 0, 0, 0.0, 1.0,
                             {"bench": [20000, 20000], "server": [1024, 1024]})
    note = load.open_files_note(figure)
    assert "server 1024/1024" in note
    assert "too low for 1,000 connections (could not raise): server" in note
    figure.open_files["server"] = [4096, resource.RLIM_INFINITY]
    assert "server 4096/unlimited" in load.open_files_note(figure)
    assert load.open_files_note(figure).endswith("enough for 1,000 connections")


def test_heartbeat_percentiles_and_none_without_samples() -> None:
    """p50/p95/p99 come from the steady-state samples; no samples give no figures."""
    values = [float(v) for v in range(1, 101)]
    got = load.heartbeat_percentiles(values)
    assert got["p50"] == pytest.approx(50.5)
    assert got["p95"] == pytest.approx(95.05)
    assert got["p99"] == pytest.approx(99.01)
    assert load.heartbeat_percentiles([]) == {}


def test_tally_keeps_ramp_and_steady_heartbeats_apart() -> None:
    """A heartbeat sent before every agent was connected does not count as steady state."""
    tally = Tally(steady_from=100.0)
    tally.record(99.9, 7.0)
    tally.record(100.0, 3.0)
    assert tally.ramp_ms == [7.0]
    assert tally.steady_ms == [3.0]
    assert len(tally.steady_sent_unix_s) == 1


def test_load_rows_judge_the_issue_goals() -> None:
    """Server RSS <= 300 MB and heartbeat p95 <= 50 ms are judged; a miss prints **no**."""
    specs = load_figure_specs(20, 1000, 1000)
    samples = {
        (PHOTONIC, "load.idle.server_rss_mb"): [310.0],
        (PHOTONIC, "load.idle.heartbeat.p95"): [12.0],
        (PHOTONIC, "load.idle.registered"): [1000.0],
        (PHOTONIC, "load.sync.missing"): [0.0],
    }
    rows = {row.figure: row for row in build_rows(specs, samples)}
    assert rows["1,000 idle agents: server peak RSS"].met is False
    assert rows["1,000 idle agents: heartbeat round trip, p95"].met is True
    assert rows["1,000 idle agents: agents registered"].met is True
    assert rows["20 agents syncing at once (1,000 files): photos missing or damaged"].met is True
    assert rows["1,000 idle agents: heartbeat round trip, p50"].met is None
    table = markdown_table(list(rows.values()))
    assert "| 1,000 idle agents: server peak RSS | MB | 310 | - | - | - | <= 300 MB | **no** |" \
        in table


def test_count_missing_finds_absent_and_damaged_library_copies(tmp_path: Path) -> None:
    """A photo counts as arrived only when its library copy has the source's bytes."""
    source, library = tmp_path / "source", tmp_path / "library"
    for rel, data in (("a/1.jpg", b"one"), ("a/2.jpg", b"two"), ("b/3.jpg", b"three")):
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(data)
    stored = library / "load-0000" / "photos"
    (stored / "a").mkdir(parents=True)
    (stored / "a/1.jpg").write_bytes(b"one")
    (stored / "a/2.jpg").write_bytes(b"tw0")
    shares = [["a/1.jpg", "a/2.jpg"], ["b/3.jpg"]]
    assert load.count_missing(library, source, ["load-0000", "load-0001"], shares) == 2


def test_refusals_are_counted_by_reason_from_the_server_log() -> None:
    """Only sync_stream_refused events count, grouped by their reason."""
    log = "\n".join([
        'ts=2026-12-06T10:00:00.000Z level=warning event=sync_stream_refused agent=load-0001 '
        'reason="the server is at max_sync_memory"',
        'ts=2026-12-06T10:00:00.100Z level=info event=file_committed path=a.jpg',
        'ts=2026-12-06T10:00:00.200Z level=warning event=sync_stream_refused agent=load-0002 '
        'reason="the server is at max_sync_memory"',
        'ts=2026-12-06T10:00:00.300Z level=info msg="sync_stream_refused is an event name"',
    ])
    assert load.refusals(log) == {"the server is at max_sync_memory": 2}


def test_pki_is_made_once_and_remade_when_a_key_is_missing(tmp_path: Path) -> None:
    """The cached certificates are reused as they are; a lost key makes the set again."""
    pki = load.ensure_pki(tmp_path, 3)
    key = pki / "load-0002.key"
    made_ns = key.stat().st_mtime_ns
    assert load.ensure_pki(tmp_path, 2) == pki
    assert key.stat().st_mtime_ns == made_ns
    (pki / "load-0001.key").unlink()
    load.ensure_pki(tmp_path, 3)
    assert (pki / "load-0001.key").exists()
    assert load.ensure_pki(tmp_path, 4) == pki and (pki / "load-0003.crt").exists()


def test_rss_and_open_files_are_read_from_proc() -> None:
    """The sampler keeps a peak at least as high as the last sample; limits match getrlimit."""
    pid = os.getpid()
    assert read_rss_bytes(pid) > 0
    with RssSampler(pid) as sampler:
        pass
    assert sampler.samples >= 2
    assert sampler.peak_bytes >= sampler.last_bytes > 0
    assert read_open_files_limit(pid) == resource.getrlimit(resource.RLIMIT_NOFILE)

    busy, total = read_machine_cpu()
    assert 0 < busy <= total


def test_cpu_trace_note_summarises_server_and_machine() -> None:
    """The note gives the server's and the machine's median and peak, and the busy seconds."""
    trace = [CpuSample(0.0, 10.0, 20.0), CpuSample(1.0, 14.0, 95.0), CpuSample(2.0, 12.0, 30.0)]
    figure = load.IdleFigure(1000, 1000, [], [], [], [], [], {}, 0, 0, 0, 0.0, 3.0, {}, trace)
    assert load.cpu_trace_note(figure) == (
        "1,000 idle agents, per second over 3 s: server 12% of a core (max 14%), whole "
        "machine 30% of all cores (max 95%; >= 85% in 1 s)"
    )
    figure.cpu_trace = []
    assert load.cpu_trace_note(figure) == "1,000 idle agents: no CPU trace"


def test_idle_values_and_raw_samples_use_the_figure_keys() -> None:
    """RSS growth is per registered agent; raw heartbeats keep their send times and client,
    on the clock of the first steady heartbeat, as the CPU trace does."""
    mb = 1_000_000
    figure = load.IdleFigure(
        agents=2, registered=2, heartbeat_ms=[1.0, 3.0, 100.0],
        heartbeat_sent_unix_s=[1000.0, 1005.5, 1002.0], heartbeat_client=[0, 0, 1],
        ramp_heartbeat_ms=[2.0], register_ms=[4.0], failures={"Heartbeat UNAVAILABLE": 1},
        server_base_rss_bytes=60 * mb, server_peak_rss_bytes=61 * mb,
        server_end_rss_bytes=60 * mb, server_cpu_s=1.5, window_s=10.0,
        cpu_trace=[CpuSample(1001.0, 12.0, 50.0)],
    )
    values = load.idle_values(figure)
    assert values["load.idle.rss_per_agent_kb"] == pytest.approx(500)
    assert values["load.idle.server_cpu_pct"] == pytest.approx(15)
    assert values["load.idle.failures"] == 1
    assert values["load.idle.heartbeat.p50"] == pytest.approx(3.0)
    specs = {spec.key for spec in load_figure_specs(20, 1000, 2)}
    assert set(values) <= specs
    raw = load.idle_raw_samples(figure)
    assert raw["load.idle.heartbeat_sent_s.all"] == [0.0, 5.5, 2.0]
    assert raw["load.idle.heartbeat_client.all"] == [0.0, 0.0, 1.0]
    assert raw["load.idle.trace_s.all"] == [1.0]


def test_syncing_values_use_the_figure_keys() -> None:
    """Every value of the agents-syncing figure has a row in the table."""
    figure = load.SyncingFigure(20, 1000, 150 * 10**6, 5.0, 200 * 10**6, 1.2, 0, 9.0,
                                {"at max_sync_memory": 3})
    values = load.syncing_values(figure)
    assert values["load.sync.files_per_s"] == pytest.approx(200)
    assert values["load.sync.streams_refused"] == 3
    assert set(values) <= {spec.key for spec in load_figure_specs(20, 1000, 1000)}


@pytest.mark.parametrize(("argv", "groups"), [
    ([], {"sync", "ingest", "startup", "scale", "load", "jobs", "lightroom", "dashboard",
          "archive", "scaleout"}),
    (["--only", "load", "--quick"], {"load"}),
    (["--no-scale"], {"sync", "ingest", "startup", "load", "jobs", "lightroom", "dashboard",
                      "archive", "scaleout"}),
    (["--no-load", "--no-scale", "--no-jobs", "--no-lightroom", "--no-dashboard",
      "--no-archive", "--no-ingest", "--no-startup", "--no-scaleout"], {"sync"}),
    (["--only", "startup"], {"startup"}),
    (["--only", "ingest"], {"ingest"}),
    (["--only", "load", "--no-load"], set()),
    (["--only", "jobs"], {"jobs"}),
    (["--only", "lightroom"], {"lightroom"}),
    (["--only", "dashboard"], {"dashboard"}),
    (["--only", "archive"], {"archive"}),
    (["--only", "scaleout", "--quick"], {"scaleout"}),
])
def test_figure_groups_follow_only_and_no_flags(argv: list[str], groups: set[str]) -> None:
    """--only picks one group; --no-scale, --no-load, --no-jobs, --no-lightroom,
    --no-dashboard, --no-archive, --no-ingest, --no-startup and --no-scaleout each drop
    theirs."""
    assert run._groups(run._parse_args(argv)) == groups
