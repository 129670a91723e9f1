"""Renders a results JSON as the README's performance tables, between two marker lines.

`python -m bench.readme [results.json] [--readme README.md] [--check]`: the tables are written
from the JSON, never edited by hand; --check exits 1 when the README differs from a fresh
rendering (so a hand edit shows).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.figures import CPU_SETS, PEERS
from bench.report import PHOTONIC, Stat, format_stat, format_value, ratio, summarize
from bench.symmetric import MODES, SIDES, figure_key

BEGIN = "<!-- bench:performance:begin (python -m bench.readme writes this part) -->"
END = "<!-- bench:performance:end -->"
_BENCH_DIR = Path(__file__).resolve().parent
_TOOLS = (PHOTONIC, *PEERS)
_SIDE_LABELS = {
    "sender": "sender (photonic agent, Syncthing A, rsync client + ssh)",
    "receiver": "receiver (photonic server, Syncthing B, sshd / rsync daemon)",
}

SampleTable = Mapping[str, Sequence[float]]
"""`tool/figure key` -> one value per run, as the results JSON stores them."""


def _stat(samples: SampleTable, tool: str, key: str) -> Stat | None:
    return summarize(samples.get(f"{tool}/{key}", ()))


def _metric(set_name: str) -> tuple[str, str]:
    return ("files_per_s", "files/s") if set_name == "small" else ("mbps", "MB/s")


def tools_in(samples: SampleTable) -> list[str]:
    """The tools the run measured (a column for each), photonic first."""
    present = {key.split("/", 1)[0] for key in samples}
    return [tool for tool in _TOOLS if tool in present]


def throughput_table(samples: SampleTable, sets: Mapping[str, Mapping[str, int]],
                     set_names: Sequence[str]) -> str:
    """Warm and cold first syncs: every tool's median (min–max), peers with photonic/peer."""
    tools = tools_in(samples)
    peers = [tool for tool in tools if tool != PHOTONIC]
    lines = [
        "| set | mode | unit | " + " | ".join(tools) + " |",
        "|---|---|---|" + "---:|" * len(tools),
    ]
    for name in set_names:
        metric, unit = _metric(name)
        size = sets.get(name, {})
        label = f"{name} ({size.get('files', 0):,} files, {size.get('bytes', 0) / 1e9:.2f} GB)"
        for mode in MODES:
            key = figure_key(name, mode, metric)
            mine = _stat(samples, PHOTONIC, key)
            cells = [format_stat(mine)]
            for peer in peers:
                theirs = _stat(samples, peer, key)
                cells.append(_with_ratio(format_stat(theirs), ratio(mine, theirs)))
            lines.append(f"| {label} | {mode} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _with_ratio(text: str, value: float | None) -> str:
    return text if value is None else f"{text} ({value:.2f}x)"


def cpu_table(samples: SampleTable, set_names: Sequence[str]) -> str:
    """Each side's CPU-seconds per GB and per 1,000 photos (medians), and photonic/peer."""
    tools = tools_in(samples)
    lines = [
        "| set | mode | side | " + " | ".join(tools) + " |",
        "|---|---|---|" + "---:|" * len(tools),
    ]
    for name in (n for n in CPU_SETS if n in set_names):
        for mode in MODES:
            for side in SIDES:
                cells = []
                mine = [_stat(samples, PHOTONIC, figure_key(name, mode, f"{m}.{side}"))
                        for m in ("cpu_per_gb", "cpu_per_kphotos")]
                for tool in tools:
                    theirs = [_stat(samples, tool, figure_key(name, mode, f"{m}.{side}"))
                              for m in ("cpu_per_gb", "cpu_per_kphotos")]
                    cells.append(_cpu_cell(theirs[0], theirs[1],
                                           None if tool == PHOTONIC else ratio(mine[0], theirs[0])))
                lines.append(f"| {name} | {mode} | {_SIDE_LABELS[side]} | "
                             + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cpu_cell(per_gb: Stat | None, per_kphotos: Stat | None, vs_photonic: float | None) -> str:
    if per_gb is None or per_kphotos is None:
        return "n/a"
    text = f"{format_value(per_gb.median)} /GB, {format_value(per_kphotos.median)} /1k"
    return _with_ratio(text, vs_photonic)


def other_rows_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The run's remaining figures (re-sync, incremental, latency, memory) as the bench prints
    them; rows with no photonic value are left out."""
    lines = [
        "| figure | unit | photonic | peer | peer value | ratio | target | met |",
        "|---|---|---:|---|---:|---:|---|---|",
    ]
    for row in rows:
        if row["figure"].startswith("first sync") or " CPU, " in row["figure"]:
            continue
        if row["photonic"] is None:
            continue
        ratio_text = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        lines.append(
            f"| {row['figure']} | {row['unit']} | {_json_stat(row['photonic'])} | "
            f"{row['peer'] or '-'} | {_json_stat(row['peer_value'])} | {ratio_text} | "
            f"{row['target'] or '-'} | {met} |"
        )
    return "\n".join(lines)


def _json_stat(stat: Mapping[str, float] | None) -> str:
    if stat is None:
        return "n/a"
    return format_stat(Stat(stat["median"], stat["min"], stat["max"], int(stat["runs"])))


def provenance(results: Mapping[str, Any], source: str) -> str:
    """One paragraph: which run, when, on what, and how busy the machine was."""
    context = results.get("context", {})
    versions = context.get("versions", {})
    commit = str(context.get("photonic_commit", ""))[:7] or "unknown"
    dirty = " plus uncommitted changes" if context.get("photonic_tree_dirty") else ""
    kind = "quick" if results.get("quick") else "full"
    return (
        f"From `{source}` ({kind} sets, {context.get('runs', '?')} run(s) per figure, tools "
        f"interleaved run by run), finished {results.get('finished_utc', '?')}, photonic "
        f"{commit}{dirty}; {context.get('cpus', '?')} cores ({context.get('cpu_model', '?')}), "
        f"{context.get('memory', '?')}, {context.get('machine', '?')}, Python "
        f"{context.get('python', '?')}, grpcio {versions.get('grpcio', '?')}; "
        f"{versions.get('syncthing', '?')}; {versions.get('rsync', '?')}. "
        f"Load average at start {context.get('loadavg_start', '?')}, at end "
        f"{context.get('loadavg_end', '?')}. Values are median (min–max) of the runs; "
        "ratios are photonic / peer on medians (above 1 is better for MB/s and files/s, "
        "below 1 for CPU)."
    )


def render(results: Mapping[str, Any], source: str) -> str:
    """The whole generated block, markers included."""
    samples: SampleTable = results.get("samples", {})
    context = results.get("context", {})
    set_names = context.get("sync_sets") or [n for n in ("large", "small", "raw", "tiff")
                                             if n in context.get("sets", {})]
    parts = [
        BEGIN,
        provenance(results, source),
        "",
        "First sync, **warm** (every daemon up and connected, the photos appear, until the last "
        "is durable at the receiver) and **cold** (every process of the tool started inside "
        "the clock):",
        "",
        throughput_table(samples, context.get("sets", {}), set_names),
        "",
        "CPU-seconds each side spent, per GB and per 1,000 photos (medians; the ratio is "
        "photonic's figure per GB over the tool's):",
        "",
        cpu_table(samples, set_names),
        "",
        "The run's other figures:",
        "",
        other_rows_table(results.get("rows", [])),
        END,
    ]
    return "\n".join(parts)


def replace_block(text: str, block: str) -> str:
    """text with everything from the BEGIN marker to the END marker replaced by block."""
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {BEGIN!r} ... {END!r} block")
    return text[:start] + block + text[end + len(END):]


def _stamped(path: Path, results: Mapping[str, Any]) -> Path:
    """latest.json names itself by the timestamped file it copies, so the README cites that."""
    finished = str(results.get("finished_utc", ""))
    stamp = finished.replace("-", "").replace(":", "").replace("+0000", "Z")[:15] + "Z"
    candidate = path.with_name(f"{stamp}.json")
    return candidate if path.name == "latest.json" and candidate.exists() else path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.readme", description=__doc__)
    parser.add_argument("results", nargs="?", type=Path,
                        default=_BENCH_DIR / "results" / "latest.json")
    parser.add_argument("--readme", type=Path, default=_BENCH_DIR.parent / "README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    args.results = _stamped(args.results, results)
    try:
        source = args.results.resolve().relative_to(_BENCH_DIR.parent).as_posix()
    except ValueError:
        source = str(args.results)
    current = args.readme.read_text()
    updated = replace_block(current, render(results, source))
    if args.check:
        return 0 if updated == current else 1
    args.readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
