"""Unit tests of the warm/cold figures' pure parts: the interleaving plan, per-side cost
arithmetic, the figure rows, and the README tables rendered from a results JSON."""

from __future__ import annotations

from collections import Counter

import pytest

from bench import readme
from bench.figures import sync_figure_specs
from bench.peers.base import SyncRun
from bench.procstat import ProcUsage
from bench.report import PHOTONIC, Stat, Target, TargetKind
from bench.symmetric import MODES, Mode, interleaved_plan, run_values, side_cost


def test_plan_runs_every_tool_once_per_set_mode_and_run() -> None:
    """Every (run, set, mode) gets each tool exactly once, and all of a run comes before the
    next run starts, so a noisy minute falls on every tool of that round."""
    plan = interleaved_plan(3, ["large", "small"], MODES, ["a", "b", "c"])
    assert len(plan) == 3 * 2 * 2 * 3
    per_round = Counter((s.run, s.set_name, s.mode) for s in plan)
    assert set(per_round.values()) == {3}
    assert [s.run for s in plan] == sorted(s.run for s in plan)


def test_plan_rotates_the_tools_order_run_by_run() -> None:
    """A B C, then B C A, then C A B: each tool opens a round equally often."""
    plan = interleaved_plan(3, ["large"], [Mode.WARM], ["a", "b", "c"])
    orders = [[s.tool for s in plan if s.run == run] for run in range(3)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert interleaved_plan(2, ["x"], [Mode.COLD], []) == []


def test_side_cost_is_cpu_over_gigabytes_and_thousands_of_photos() -> None:
    """3 CPU-s for 1.5 GB in 500 photos: 2 CPU-s/GB and 6 CPU-s per 1,000 photos."""
    cost = side_cost(3.0, files=500, payload_bytes=1_500_000_000)
    assert cost.per_gb == pytest.approx(2.0)
    assert cost.per_kphotos == pytest.approx(6.0)
    with pytest.raises(ValueError):
        side_cost(1.0, files=0, payload_bytes=10)


def test_run_values_name_every_sample_by_set_mode_and_side() -> None:
    """A warm run gives wall time, throughput and both sides' CPU under `set.mode.metric`; a
    side that was not measured gives no sample rather than a zero."""
    run = SyncRun(2.0, 1_000, 500_000_000, None, ProcUsage(1.0, 0), None)
    values = run_values("small", Mode.WARM, run)
    assert values["small.warm.s"] == 2.0
    assert values["small.warm.files_per_s"] == pytest.approx(500.0)
    assert values["small.warm.mbps"] == pytest.approx(250.0)
    assert values["small.warm.cpu_per_gb.sender"] == pytest.approx(2.0)
    assert values["small.warm.cpu_per_kphotos.sender"] == pytest.approx(1.0)
    assert not any("receiver" in key for key in values)
    assert "small.warm.bytes_sent" not in values


def test_figure_rows_carry_the_warm_bars_and_none_cold() -> None:
    """Issue 16's bars sit on warm rows (>= 1.2x Syncthing large, >= 1.0x small, CPU <= 0.7x
    Syncthing's side); cold rows are reported beside them without a bar."""
    specs = sync_figure_specs({"large": 200, "small": 5000}, ["large", "small"])
    by_key = {(s.key, s.peer): s.target for s in specs}
    assert by_key[("large.warm.mbps", "syncthing")] == Target(TargetKind.RATIO_AT_LEAST, 1.2)
    assert by_key[("small.warm.files_per_s", "syncthing")] == Target(
        TargetKind.RATIO_AT_LEAST, 1.0
    )
    assert by_key[("large.cold.mbps", "syncthing")] is None
    assert by_key[("small.warm.cpu_per_kphotos.receiver", "syncthing")] == Target(
        TargetKind.RATIO_AT_MOST, 0.7
    )
    assert by_key[("small.cold.cpu_per_gb.sender", "syncthing")] is None


def test_ratio_at_most_target_is_met_at_or_below_the_bound() -> None:
    """A CPU bar (photonic / peer <= 0.7x) is met at 0.7x and not above."""
    bar = Target(TargetKind.RATIO_AT_MOST, 0.7)
    assert bar.met(Stat(1, 1, 1, 1), 0.7) is True
    assert bar.met(Stat(1, 1, 1, 1), 0.71) is False
    assert bar.met(None, None) is None
    assert bar.describe("CPU-s/GB") == "<= 0.7x"


def _results() -> dict[str, object]:
    samples = {
        f"{PHOTONIC}/large.warm.mbps": [300.0, 310.0, 320.0],
        "syncthing/large.warm.mbps": [200.0, 250.0, 260.0],
        f"{PHOTONIC}/large.cold.mbps": [150.0],
        f"{PHOTONIC}/large.warm.cpu_per_gb.sender": [2.0],
        f"{PHOTONIC}/large.warm.cpu_per_kphotos.sender": [12.0],
        "syncthing/large.warm.cpu_per_gb.sender": [4.0],
        "syncthing/large.warm.cpu_per_kphotos.sender": [24.0],
    }
    return {
        "finished_utc": "2026-12-06T18:00:00+00:00",
        "quick": False,
        "context": {
            "runs": 3, "cpus": 2, "sync_sets": ["large"],
            "sets": {"large": {"files": 200, "bytes": 1_260_000_000}},
            "versions": {"syncthing": "syncthing v1.29"}, "loadavg_start": "load average 0.5",
        },
        "rows": [
            {"figure": "first sync warm, large set", "unit": "MB/s", "photonic": None,
             "peer": None, "peer_value": None, "ratio": None, "target": None, "met": None},
            {"figure": "new photo -> durable commit, p50", "unit": "s",
             "photonic": {"median": 0.3, "min": 0.29, "max": 0.31, "runs": 3}, "peer": None,
             "peer_value": None, "ratio": None, "target": "<= 0.5 s", "met": True},
        ],
        "samples": samples,
    }


def test_readme_tables_show_median_spread_and_ratio_from_the_json() -> None:
    """The throughput table gives photonic's median (min–max) and each peer's with the ratio,
    a column per tool the run measured (n/a where one figure is missing); the CPU table gives
    per GB and per 1,000 photos."""
    block = readme.render(_results(), "bench/results/x.json")
    assert block.startswith(readme.BEGIN) and block.endswith(readme.END)
    lines = block.splitlines()
    warm = next(line for line in lines if line.startswith("| large") and "| warm | MB/s" in line)
    assert warm.endswith("| 310 (300–320) | 250 (200–260) (1.24x) |")  # only tools measured
    cold = next(line for line in lines if line.startswith("| large") and "| cold | MB/s" in line)
    assert cold.endswith("| 150 | n/a |")
    cpu = next(line for line in lines if "| warm | sender" in line)
    assert "2.00 /GB, 12.0 /1k |" in cpu
    assert "4.00 /GB, 24.0 /1k (0.50x)" in cpu
    assert "| new photo -> durable commit, p50 | s | 0.300 (0.290–0.310) |" in block
    assert "first sync warm, large set | MB/s" not in block  # shown in the tables above
    assert "bench/results/x.json" in block and "syncthing v1.29" in block


def test_replace_block_rewrites_only_between_the_markers() -> None:
    """Text outside the markers is kept byte for byte; a README without them is an error."""
    text = f"intro\n{readme.BEGIN}\nold table\n{readme.END}\noutro\n"
    new = readme.replace_block(text, f"{readme.BEGIN}\nnew\n{readme.END}")
    assert new == f"intro\n{readme.BEGIN}\nnew\n{readme.END}\noutro\n"
    with pytest.raises(ValueError):
        readme.replace_block("no markers", "x")
