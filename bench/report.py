"""Turns samples into figures: median/min/max, photonic/peer ratios, targets, Markdown, JSON."""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

PHOTONIC = "photonic"


@dataclass(frozen=True)
class Stat:
    """The median of several runs with their spread."""

    median: float
    minimum: float
    maximum: float
    runs: int


def summarize(values: Sequence[float]) -> Stat | None:
    """Median, min and max of the runs; None when there were none (the tool failed)."""
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return None
    return Stat(statistics.median(clean), min(clean), max(clean), len(clean))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(photonic: Stat | None, peer: Stat | None) -> float | None:
    """photonic / peer on medians; None when either is missing or the peer's is zero."""
    if photonic is None or peer is None or peer.median == 0:
        return None
    return photonic.median / peer.median


class TargetKind(StrEnum):
    RATIO_AT_LEAST = "ratio_at_least"
    RATIO_AT_MOST = "ratio_at_most"
    AT_MOST = "at_most"
    AT_LEAST = "at_least"


@dataclass(frozen=True)
class Target:
    """What the issue promises for a figure: a ratio to the peer, or a bound on photonic."""

    kind: TargetKind
    value: float

    def met(self, photonic: Stat | None, peer_ratio: float | None) -> bool | None:
        if self.kind is TargetKind.RATIO_AT_LEAST:
            return None if peer_ratio is None else peer_ratio >= self.value
        if self.kind is TargetKind.RATIO_AT_MOST:
            return None if peer_ratio is None else peer_ratio <= self.value
        if photonic is None:
            return None
        if self.kind is TargetKind.AT_MOST:
            return photonic.median <= self.value
        return photonic.median >= self.value

    def describe(self, unit: str) -> str:
        if self.kind is TargetKind.RATIO_AT_LEAST:
            return f">= {self.value:g}x"
        if self.kind is TargetKind.RATIO_AT_MOST:
            return f"<= {self.value:g}x"
        sign = "<=" if self.kind is TargetKind.AT_MOST else ">="
        return f"{sign} {self.value:g} {unit}"


@dataclass(frozen=True)
class FigureSpec:
    """One table row to build: which samples are photonic's, which the peer's, and the target."""

    figure: str
    unit: str
    key: str
    peer: str | None = None
    target: Target | None = None


@dataclass(frozen=True)
class Row:
    figure: str
    unit: str
    photonic: Stat | None
    peer: str | None
    peer_value: Stat | None
    target: Target | None

    @property
    def ratio(self) -> float | None:
        return ratio(self.photonic, self.peer_value) if self.peer else None

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.photonic, self.ratio)

    def as_json(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "unit": self.unit,
            "photonic": _stat_json(self.photonic),
            "peer": self.peer,
            "peer_value": _stat_json(self.peer_value),
            "ratio": self.ratio,
            "target": self.target.describe(self.unit) if self.target else None,
            "met": self.met,
        }


Samples = Mapping[tuple[str, str], Sequence[float]]
"""(tool, figure key) -> one value per run."""


def build_rows(specs: Iterable[FigureSpec], samples: Samples) -> list[Row]:
    """Summarizes the samples each spec names; missing samples become empty cells, not errors."""
    rows = []
    for spec in specs:
        mine = summarize(samples.get((PHOTONIC, spec.key), ()))
        theirs = summarize(samples.get((spec.peer, spec.key), ())) if spec.peer else None
        rows.append(Row(spec.figure, spec.unit, mine, spec.peer, theirs, spec.target))
    return rows


def format_value(value: float) -> str:
    """Three significant figures without scientific notation for the sizes we see."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_stat(stat: Stat | None) -> str:
    """`median (min–max)`, or just the value for a single run, or `n/a`."""
    if stat is None:
        return "n/a"
    if stat.runs == 1 or stat.minimum == stat.maximum:
        return format_value(stat.median)
    return (
        f"{format_value(stat.median)} ({format_value(stat.minimum)}–{format_value(stat.maximum)})"
    )


def _met_text(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[met]


def markdown_table(rows: Sequence[Row]) -> str:
    """The table printed at the end of a run and quoted in the README."""
    lines = [
        "| figure | unit | photonic | peer | peer value | ratio photonic/peer | target | met |",
        "|---|---|---:|---|---:|---:|---|---|",
    ]
    for row in rows:
        ratio_text = "-" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append(
            f"| {row.figure} | {row.unit} | {format_stat(row.photonic)} | {row.peer or '-'} | "
            f"{format_stat(row.peer_value) if row.peer else '-'} | {ratio_text} | "
            f"{row.target.describe(row.unit) if row.target else '-'} | {_met_text(row.met)} |"
        )
    return "\n".join(lines)


@dataclass
class Report:
    """Everything a run produced: the rows, the raw samples, and what went wrong where."""

    quick: bool
    rows: list[Row]
    samples: Samples
    errors: dict[str, str] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    finished: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_json(self) -> dict[str, Any]:
        return {
            "finished_utc": self.finished.isoformat(timespec="seconds"),
            "quick": self.quick,
            "context": self.context,
            "rows": [row.as_json() for row in self.rows],
            "samples": {
                f"{tool}/{key}": list(v) for (tool, key), v in sorted(self.samples.items())
            },
            "errors": self.errors,
        }


def write_results(report: Report, results_dir: Path) -> Path:
    """Writes `<UTC timestamp>.json` and `latest.json`; returns the timestamped path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report.as_json(), indent=2, sort_keys=False) + "\n"
    stamped = results_dir / f"{report.finished:%Y%m%dT%H%M%SZ}.json"
    for path in (stamped, results_dir / "latest.json"):
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return stamped


def report_group_run(group: str, quick: bool, rows: list[Row], samples: Samples,
                     started_s: float, results_dir: Path,
                     context: Mapping[str, Any] | None = None) -> Path:
    """A group run on its own (`python -m bench.jobs`): writes `<timestamp>-<group>.json`
    only (latest.json stays the whole suite's run), prints the table and the file's path
    (context: more keys for the JSON's context, such as the commits compared)."""
    report = Report(quick, rows, samples, context={
        "groups": [group], "wall_s": round(time.perf_counter() - started_s, 1),
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"), **(context or {})})
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{report.finished:%Y%m%dT%H%M%SZ}-{group}.json"
    path.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    print(markdown_table(rows))
    print(f"\nresults: {path}")
    return path


def _stat_json(stat: Stat | None) -> dict[str, float | int] | None:
    if stat is None:
        return None
    return {"median": stat.median, "min": stat.minimum, "max": stat.maximum, "runs": stat.runs}
