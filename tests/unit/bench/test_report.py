"""Unit tests of the benchmark's pure parts: statistics, ratios, targets, table, JSON, datagen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import datagen
from bench.datagen import FileKind, SetSpec
from bench.peers.photonic import parse_log_ts, parse_logfmt
from bench.report import (
    PHOTONIC,
    FigureSpec,
    Report,
    Stat,
    Target,
    TargetKind,
    build_rows,
    format_stat,
    markdown_table,
    percentile,
    ratio,
    summarize,
    write_results,
)


def test_summarize_gives_median_min_max_and_run_count() -> None:
    """A figure is the median of its runs, with the spread kept beside it."""
    assert summarize([3.0, 1.0, 2.0, 10.0]) == Stat(2.5, 1.0, 10.0, 4)
    assert summarize([]) is None


def test_percentile_interpolates_between_ranks() -> None:
    """p50 of an even count is between the middle two; p95 lands near the top, not beyond it."""
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert percentile(values, 50) == pytest.approx(10.5)
    assert percentile(values, 95) == pytest.approx(19.05)
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_ratio_is_photonic_over_peer_and_none_without_both() -> None:
    """Ratios compare medians; a missing or zero peer value gives no ratio rather than a crash."""
    fast, slow = Stat(300, 290, 310, 3), Stat(100, 90, 110, 3)
    assert ratio(fast, slow) == pytest.approx(3.0)
    assert ratio(None, slow) is None
    assert ratio(fast, None) is None
    assert ratio(fast, Stat(0, 0, 0, 1)) is None


def test_targets_decide_met_on_ratio_or_bound() -> None:
    """A ratio target is judged on the ratio, a bound on photonic's own median."""
    at_least = Target(TargetKind.RATIO_AT_LEAST, 1.5)
    assert at_least.met(None, 1.6) is True
    assert at_least.met(None, 1.2) is False
    assert at_least.met(None, None) is None
    at_most = Target(TargetKind.AT_MOST, 0.5)
    assert at_most.met(Stat(0.4, 0.3, 0.6, 3), None) is True
    assert at_most.met(Stat(0.7, 0.3, 0.9, 3), None) is False
    assert at_most.describe("s") == "<= 0.5 s"
    assert at_least.describe("MB/s") == ">= 1.5x"


def test_build_rows_leaves_missing_tools_empty() -> None:
    """A tool that failed shows n/a in its cell; the row is still there for the others."""
    specs = [
        FigureSpec(
            "first sync", "MB/s", "large.mbps", "syncthing", Target(TargetKind.RATIO_AT_LEAST, 1.5)
        ),
        FigureSpec("latency p50", "s", "latency.p50", None, Target(TargetKind.AT_MOST, 0.5)),
    ]
    samples = {
        (PHOTONIC, "large.mbps"): [150.0, 160.0, 170.0],
        ("syncthing", "large.mbps"): [100.0],
    }
    first, latency = build_rows(specs, samples)
    assert first.ratio == pytest.approx(1.6)
    assert first.met is True
    assert latency.photonic is None
    assert latency.met is None


def test_markdown_table_has_one_line_per_row_with_ratio_and_verdict() -> None:
    """The printed table carries median (min–max), the ratio and a yes/no verdict."""
    specs = [
        FigureSpec("first sync", "MB/s", "k", "syncthing", Target(TargetKind.RATIO_AT_LEAST, 1.5))
    ]
    rows = build_rows(specs, {(PHOTONIC, "k"): [90.0, 100.0, 110.0], ("syncthing", "k"): [100.0]})
    table = markdown_table(rows).splitlines()
    assert len(table) == 3
    assert table[0].startswith("| figure |")
    assert "| 100 (90.0–110) |" in table[2]
    assert "1.00x" in table[2]
    assert "**no**" in table[2]
    assert format_stat(None) == "n/a"


def test_write_results_writes_timestamped_and_latest_json(tmp_path: Path) -> None:
    """Results land as <UTC timestamp>.json and latest.json with the same content."""
    specs = [FigureSpec("x", "s", "k")]
    rows = build_rows(specs, {(PHOTONIC, "k"): [1.0]})
    report = Report(quick=True, rows=rows, samples={(PHOTONIC, "k"): [1.0]}, errors={"y": "boom"})
    stamped = write_results(report, tmp_path)
    latest = tmp_path / "latest.json"
    assert stamped.read_text() == latest.read_text()
    data = json.loads(latest.read_text())
    assert data["rows"][0]["photonic"] == {"median": 1.0, "min": 1.0, "max": 1.0, "runs": 1}
    assert data["samples"] == {"photonic/k": [1.0]}
    assert data["errors"] == {"y": "boom"}
    assert not list(tmp_path.glob("*.tmp"))


def test_plan_is_deterministic_and_seed_dependent() -> None:
    """The same seed plans the same files; another seed plans different content."""
    spec = datagen.standard_sets(quick=True)["large"]
    first = datagen.plan_files(spec, 7)
    assert first == datagen.plan_files(spec, 7)
    assert [f.seed for f in first] != [f.seed for f in datagen.plan_files(spec, 8)]
    assert len({f.relative_path for f in first}) == spec.count
    assert {f.make for f in first} == {"NIKON CORPORATION", "Canon"}
    assert any(f.gps is not None for f in first) and any(f.gps is None for f in first)
    assert len({f.capture_time.date() for f in first}) >= 3


def test_tiny_set_is_generated_identically_and_cached(tmp_path: Path) -> None:
    """A set made twice from one seed has identical bytes, and a valid cache is reused as is."""
    spec = SetSpec("tiny", FileKind.TINY, 25)
    one = datagen.ensure_set(spec, seed=3, cache_dir=tmp_path / "a", procs=1)
    two = datagen.ensure_set(spec, seed=3, cache_dir=tmp_path / "b", procs=1)
    assert one.files == two.files
    for rel, _size in one.files:
        data = (one.root / rel).read_bytes()
        assert data == (two.root / rel).read_bytes()
        assert data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")
    marker = one.root / one.files[0][0]
    mtime = marker.stat().st_mtime_ns
    again = datagen.ensure_set(spec, seed=3, cache_dir=tmp_path / "a", procs=1)
    assert again.files == one.files
    assert marker.stat().st_mtime_ns == mtime


def test_cache_is_rebuilt_when_a_file_is_missing(tmp_path: Path) -> None:
    """A cached set with a deleted file is not trusted: it is generated again."""
    spec = SetSpec("tiny", FileKind.TINY, 5)
    made = datagen.ensure_set(spec, seed=1, cache_dir=tmp_path, procs=1)
    (made.root / made.files[0][0]).unlink()
    assert datagen.load_cached(made.root, datagen.fingerprint(spec, 1)) is None
    rebuilt = datagen.ensure_set(spec, seed=1, cache_dir=tmp_path, procs=1)
    assert (rebuilt.root / rebuilt.files[0][0]).exists()


def test_jpeg_set_on_disk_matches_plan_and_sizes(tmp_path: Path) -> None:
    """A tiny JPEG set is real JPEGs of roughly the planned size, with two camera bodies."""
    spec = SetSpec("mini", FileKind.JPEG, 4, 20_000, 30_000, 300, 200)
    made = datagen.ensure_set(spec, seed=5, cache_dir=tmp_path, procs=1)
    assert made.count == 4
    for rel, size in made.files:
        data = (made.root / rel).read_bytes()
        assert data[:2] == b"\xff\xd8"
        assert b"Canon" in data or b"NIKON" in data
        assert 10_000 < size < 60_000


def test_server_log_lines_parse_to_fields_and_timestamps() -> None:
    """The server's key=value lines give the committed path and a UTC timestamp."""
    line = (
        'ts=2024-06-01T10:00:00.250Z level=info msg="file committed" event=file_committed '
        'path="2024-05-11 shoot/DSC_0001.jpg" size=12'
    )
    fields = parse_logfmt(line)
    assert fields["event"] == "file_committed"
    assert fields["path"] == "2024-05-11 shoot/DSC_0001.jpg"
    assert fields["msg"] == "file committed"
    assert parse_log_ts(fields["ts"]) == pytest.approx(1717236000.25)
