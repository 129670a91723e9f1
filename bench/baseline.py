"""photonic against an earlier photonic, in one run: "the figures must not regress".

A change that reshapes the code under the sync path (issue 20 put the catalog, the object store
and cross-request state behind interfaces) must show that the embedded default (SQLite catalog,
local objects, one server) is as fast as before. Two figures taken on different days on this
shared machine cannot show that, so this group runs both in the same invocation: the earlier
revision is exported with `git archive` into `bench/.data/baseline-<commit>/` and driven by the
same harness (`PhotonicPeer`) as the working tree, the two taking turns run by run exactly as
the sync group's tools do (warm and cold first syncs, the small set's no-change re-sync and
incremental sync, the large set's second agent).

Both sides start the same way, `env PYTHONPATH=<checkout> python -P -m photonic.cli`, from this
interpreter's virtualenv (the earlier revision uses today's dependencies), so neither side's
process start is cheaper than the other's.

    python -m bench.baseline --rev 59c051f [--sets large,small] [--runs 4] [--quick]

Fairness of the order: the tool that runs first in a pair reads the set from disk when the
step before evicted it (the shoot set alone is 8 GB in and 8 GB stored), and pays for it in
CPU and time; a first trial with three runs put the working tree first twice and read its
agent 1.2x dearer than the earlier revision's, identical, agent. So the run count is even (the
two sides start a pair equally often) and every step first reads its set through the page
cache, outside the clock, so that neither side reads it from disk.

Rows: photonic (the working tree) / photonic@<rev>; targets are "no regression" within the
noise of four runs (throughput >= 0.95x, CPU <= 1.05x).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import datagen, symmetric, trash
from bench.datagen import DataSet
from bench.figures import CPU_SETS
from bench.peers.photonic import PhotonicPeer
from bench.report import PHOTONIC, FigureSpec, Target, TargetKind, build_rows, report_group_run
from bench.run import _SECOND_AGENT, BENCH_DIR, Bench, PeerFactory
from bench.symmetric import MODES, SIDES, figure_key

log = logging.getLogger("bench.baseline")

REPO_DIR = BENCH_DIR.parent
THROUGHPUT_FLOOR = 0.95
"""The working tree's throughput / the earlier revision's, below which a figure regressed."""
CPU_CEILING = 1.05
"""The working tree's CPU / the earlier revision's, above which a figure regressed."""


def export_revision(rev: str, cache_dir: Path = datagen.DEFAULT_CACHE_DIR) -> tuple[str, Path]:
    """The revision's tree (`git archive`), exported once into the cache: (commit, folder).
    A folder is used only when its `.commit` marker names the commit, so a cut export is
    made again rather than run half-written."""
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    target = cache_dir / f"baseline-{commit[:12]}"
    marker = target / ".commit"
    if marker.exists() and marker.read_text().strip() == commit:
        return commit, target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO_DIR), "archive", "--format=tar", commit, "photonic"],
        check=True, capture_output=True,
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    marker.write_text(commit + "\n")
    return commit, target


def checkout_argv(checkout: Path) -> list[str]:
    """Runs the `photonic` CLI of one checkout with this interpreter: PYTHONPATH comes before
    the editable install's finder, so the checkout's package is the one imported; -P keeps
    the working folder off sys.path (run from the repository, `-m` would import the working
    tree's package whatever PYTHONPATH says, as a first trial of this group did)."""
    return ["env", f"PYTHONPATH={checkout}", sys.executable, "-P", "-m", "photonic.cli"]


def baseline_tool(commit: str) -> str:
    return f"{PHOTONIC}@{commit[:7]}"


def factories(baseline: str, checkout: Path) -> dict[str, PeerFactory]:
    """Both sides through the same harness and the same kind of command line."""
    agents = ("bench-agent", _SECOND_AGENT)
    now, then = checkout_argv(REPO_DIR), checkout_argv(checkout)
    return {
        PHOTONIC: lambda w: PhotonicPeer(w, agents=agents, argv=now),
        baseline: lambda w: PhotonicPeer(w, agents=agents, argv=then),
    }


def figure_specs(
    baseline: str, counts: dict[str, int], sync_sets: Sequence[str]
) -> list[FigureSpec]:
    """Every sync figure of the working tree against the same figure of the earlier revision."""
    floor = Target(TargetKind.RATIO_AT_LEAST, THROUGHPUT_FLOOR)
    ceiling = Target(TargetKind.RATIO_AT_MOST, CPU_CEILING)
    specs: list[FigureSpec] = []
    for name in sync_sets:
        label = f"{name} set ({counts.get(name, 0):,} files)"
        metric, unit = ("files_per_s", "files/s") if name == "small" else ("mbps", "MB/s")
        for mode in MODES:
            specs.append(FigureSpec(f"first sync {mode}, {label}", unit,
                                    figure_key(name, mode, metric), baseline, floor))
    for name in (n for n in CPU_SETS if n in sync_sets):
        for mode in MODES:
            for side in SIDES:
                specs.append(FigureSpec(
                    f"{side} CPU, {mode} first sync, {name} set", "CPU-s/GB",
                    figure_key(name, mode, f"cpu_per_gb.{side}"), baseline, ceiling))
        specs.append(FigureSpec(f"server peak RSS, cold first sync, {name} set", "MB",
                                f"{name}.rss_mb.receiver", baseline))
    if "small" in sync_sets:
        specs += [
            FigureSpec("no-change re-sync after restart, small set", "s", "small.resync.s",
                       baseline),
            FigureSpec("incremental sync of 10 new photos", "s", "incremental.s", baseline),
        ]
    if "large" in sync_sets:
        specs.append(FigureSpec("second agent holding the large set", "s", "second_agent.s",
                                baseline))
    return specs


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO_DIR), *args], check=True,
                          capture_output=True, text=True).stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.baseline",
                                description=__doc__.split("\n")[0])
    p.add_argument("--rev", required=True, help="the earlier revision (a commit, tag or branch)")
    p.add_argument("--sets", default="large,small",
                   help="comma-separated sync sets (default large,small)")
    p.add_argument("--runs", type=int, default=4,
                   help="runs per figure, even: each side starts a pair as often (default 4)")
    p.add_argument("--quick", action="store_true", help="the quick sets")
    p.add_argument("--seed", type=int, default=datagen.DEFAULT_SEED)
    p.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    started = time.perf_counter()
    runs = args.runs
    if runs <= 0 or runs % 2:
        print("--runs must be even and positive: each side starts a pair as often",
              file=sys.stderr)
        return 2
    sync_sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    standard = datagen.standard_sets(quick=args.quick)
    unknown = set(sync_sets) - set(standard)
    if unknown:
        print(f"unknown sets: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    commit, checkout = export_revision(args.rev)
    baseline = baseline_tool(commit)
    sets: dict[str, DataSet] = {
        name: datagen.ensure_set(standard[name], seed=args.seed)
        for name in (*sync_sets, "fresh")
    }
    work_dir = datagen.DEFAULT_CACHE_DIR / "work-baseline"
    shutil.rmtree(work_dir, ignore_errors=True)
    tools = [PHOTONIC, baseline]
    bench = Bench(work_dir, sets, tools, factories(baseline, checkout), preread=True)
    try:
        with trash.deferred_deletion(work_dir / "trash"):
            for step in symmetric.interleaved_plan(runs, sync_sets, MODES, tools):
                bench.step(step, runs)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    for what, error in bench.errors.items():
        print(f"FAILED {what}: {error}", file=sys.stderr)
    counts = {name: ds.count for name, ds in sets.items()}
    rows = build_rows(figure_specs(baseline, counts, sync_sets), bench.samples)
    report_group_run("baseline", args.quick, rows, bench.samples, started, args.results_dir,
                     context={"photonic_commit": _git("rev-parse", "HEAD"),
                              "photonic_tree_dirty": bool(_git("status", "--porcelain", "--",
                                                               "photonic")),
                              "baseline_commit": commit, "runs": runs, "sync_sets": sync_sets,
                              "errors": bench.errors,
                              "loadavg_by_step": [list(pair) for pair in bench.loadavg]})
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
