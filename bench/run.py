"""Runs the benchmark: `python -m bench.run [--quick]`; Markdown on stdout, JSON in results/."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from bench import (
    archive,
    dashboard,
    datagen,
    ingest,
    jobs,
    lightroom,
    load,
    scale,
    scaleout,
    startup,
    symmetric,
    trash,
)
from bench.datagen import DataSet
from bench.figures import (
    RAW_GRPC,
    RSYNC_DAEMON,
    RSYNC_SSH,
    SYNCTHING,
    figure_specs,
    load_figure_specs,
)
from bench.load import LoadShape
from bench.peers.base import SymmetricPeer, SyncPeer, SyncRun, link_tree
from bench.peers.photonic import PhotonicPeer, measure_latency
from bench.peers.rsync import RsyncDaemonPeer, RsyncSshPeer
from bench.peers.syncthing import SyncthingPeer
from bench.raw_grpc import RawGrpcCeiling
from bench.report import PHOTONIC, Report, build_rows, markdown_table, percentile, write_results
from bench.symmetric import Mode, Step

log = logging.getLogger("bench")
BENCH_DIR = Path(__file__).resolve().parent
_MB = 1_000_000
_GB = 1_000_000_000
_SECOND_AGENT = "bench-agent-2"
_INCREMENTAL_FILES = 10
GROUPS = ("sync", "ingest", "startup", "scale", "load", "jobs", "lightroom", "dashboard",
          "archive", "scaleout")
SYNC_SETS = ("large", "small", "raw", "tiff", "shoot")

PeerFactory = Callable[[Path], SymmetricPeer]
_FACTORIES: dict[str, PeerFactory] = {
    PHOTONIC: lambda w: PhotonicPeer(w, agents=("bench-agent", _SECOND_AGENT)),
    SYNCTHING: SyncthingPeer,
    RSYNC_SSH: RsyncSshPeer,
    RSYNC_DAEMON: RsyncDaemonPeer,
    RAW_GRPC: RawGrpcCeiling,
}


class Bench:
    """Collects one value per run for each (tool, figure) and every failure, never aborting."""

    def __init__(self, work_dir: Path, sets: dict[str, DataSet], tools: Sequence[str],
                 factories: dict[str, PeerFactory] | None = None, *,
                 preread: bool = False) -> None:
        """factories: peers beyond the standard ones, by tool name (bench/baseline.py);
        preread: each step first reads its set through the page cache, outside the clock."""
        self.preread = preread
        self.work_dir = work_dir
        self.factories = {**_FACTORIES, **(factories or {})}
        self.sets = sets
        self.tools = tools
        self.samples: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.errors: dict[str, str] = {}
        self.notes: list[str] = []
        self.loadavg: list[tuple[str, str]] = []

    def record(self, tool: str, key: str, value: float) -> None:
        self.samples[(tool, key)].append(value)

    def attempt(self, what: str, action: Callable[[], None]) -> None:
        """Runs one measurement; a failure is logged and kept in the report, and the run goes on."""
        started = time.perf_counter()
        log.info("%s ...", what)
        try:
            action()
        except Exception as exc:
            self.errors[what] = f"{type(exc).__name__}: {exc}"
            log.error("%s failed: %s", what, exc)
            log.debug("%s", traceback.format_exc())
        else:
            log.info("%s done in %.1f s", what, time.perf_counter() - started)

    # --- per-set scenarios -------------------------------------------------------------------

    def step(self, step: Step, runs: int) -> None:
        """One warm or cold measurement of the plan, with the machine's load beside it."""
        what = step.describe(runs)
        if self.preread:
            datagen.read_through(self.sets[step.set_name])
        self.loadavg.append((what, _loadavg()))
        if step.mode is Mode.WARM:
            action = functools.partial(self.warm_set, step.tool, step.set_name, step.run)
        else:
            action = functools.partial(self.cold_set, step.tool, step.set_name, step.run)
        self.attempt(what, action)

    def cold_set(self, tool: str, name: str, run: int) -> None:
        """Every process of the tool started inside the clock; then, on the small set, the
        no-change re-sync and the incremental sync, and on the large set a second agent."""
        dataset = self.sets[name]
        run_dir = self.work_dir / f"{tool}-{name}-cold-{run}"
        source = run_dir / "source"
        run_dir.mkdir(parents=True)
        link_tree(dataset.root, source)
        peer = self.factories[tool](run_dir)
        try:
            first = peer.cold_sync(source, dataset.count, dataset.total_bytes)
            self._record_sync(tool, name, Mode.COLD, first)
            if name == "small" and tool != RAW_GRPC:  # the ceiling has first syncs only
                follow = cast(SyncPeer, peer)
                self._record_resync(tool, follow.resync_unchanged())
                added = functools.partial(self._add_fresh, source, run)
                self.record(tool, "incremental.s", follow.incremental(added).seconds)
            if name == "large" and isinstance(peer, PhotonicPeer):
                second = peer.second_agent(_SECOND_AGENT)
                self.record(tool, "second_agent.s", second.seconds)
                self.record(tool, "second_agent.bytes", float(second.bytes_sent or 0))
        finally:
            peer.close()
            trash.discard(run_dir)

    def warm_set(self, tool: str, name: str, run: int) -> None:
        """The tool's daemons up and connected (a warm-up photo went through), then the set
        appears in the watched folder; timed until every photo is durable at the receiver."""
        dataset = self.sets[name]
        run_dir = self.work_dir / f"{tool}-{name}-warm-{run}"
        incoming = run_dir / "staging" / f"{name}-{run}"
        run_dir.mkdir(parents=True)
        link_tree(dataset.root, incoming)
        fresh = self.sets["fresh"]
        warmup = fresh.root / fresh.files[-1][0]
        peer = self.factories[tool](run_dir)
        try:
            self._record_sync(
                tool, name, Mode.WARM,
                peer.warm_sync(incoming, dataset.count, dataset.total_bytes, warmup),
            )
        finally:
            peer.close()
            trash.discard(run_dir)

    def _record_sync(self, tool: str, name: str, mode: Mode, run: SyncRun) -> None:
        for key, value in symmetric.run_values(name, mode, run).items():
            self.record(tool, key, value)
        if mode is Mode.COLD:
            for side, usage in (("sender", run.sender), ("receiver", run.receiver)):
                if usage is not None and usage.peak_rss_bytes:
                    self.record(tool, f"{name}.rss_mb.{side}", usage.peak_rss_bytes / _MB)

    def _record_resync(self, tool: str, run: SyncRun) -> None:
        self.record(tool, "small.resync.s", run.seconds)
        if run.bytes_sent is not None:
            self.record(tool, "small.resync.bytes", float(run.bytes_sent))

    def _add_fresh(self, source: Path, run: int) -> tuple[int, int]:
        fresh = self.sets["fresh"]
        chosen = [rel for rel, _ in fresh.files[:_INCREMENTAL_FILES]]
        written = datagen.copy_into(fresh, chosen, source / f"incoming-{run}")
        return len(written), sum(p.stat().st_size for p in written)

    # --- photonic-only figures ---------------------------------------------------------------

    def latency(self, run: int) -> None:
        fresh = self.sets["fresh"]
        run_dir = self.work_dir / f"latency-{run}"
        watch = run_dir / "watch"
        watch.mkdir(parents=True)
        peer = PhotonicPeer(run_dir)
        try:
            peer.start_server()
            photos = [
                (f"card-{run}/{rel.rsplit('/', 1)[-1]}", (fresh.root / rel).read_bytes())
                for rel, _ in fresh.files[_INCREMENTAL_FILES:]
            ]
            latencies, _usage = measure_latency(peer, "bench-agent", watch, photos)
            self.record(PHOTONIC, "latency.p50", percentile(latencies, 50))
            self.record(PHOTONIC, "latency.p95", percentile(latencies, 95))
            self.samples[(PHOTONIC, "latency.all")].extend(latencies)
        finally:
            peer.close()
            trash.discard(run_dir)

    def first_scan(self) -> None:
        figure = scale.first_scan(self.work_dir, self.sets["scale"])
        for key, values in scale.first_scan_values(figure).items():
            self.samples[(PHOTONIC, key)].extend(values)

    def restart_over_index(self) -> None:
        dataset = self.sets["scale"]
        run_dir = self.work_dir / "scale-restart"
        run_dir.mkdir(parents=True)
        peer = PhotonicPeer(run_dir)
        try:
            figure = scale.restart_over_index(peer, dataset.root, dataset.count)
            for key, values in scale.restart_values(figure).items():
                self.samples[(PHOTONIC, key)].extend(values)
        finally:
            peer.close()
            trash.discard(run_dir)

    def manifest_check(self, catalog_photos: int, rounds: int) -> None:
        run_dir = self.work_dir / "scale-manifest"
        run_dir.mkdir(parents=True)
        peer = PhotonicPeer(run_dir)
        try:
            figure = scale.manifest_check(peer, "bench-agent", catalog_photos, rounds)
            for key, values in scale.manifest_values(figure).items():
                self.samples[(PHOTONIC, key)].extend(values)
        finally:
            peer.close()
            trash.discard(run_dir)

    # --- scale-out (PostgreSQL + S3) -----------------------------------------------------------

    def scaleout_figures(self, quick: bool, runs: int | None) -> None:
        """Each figure on its own attempt: one that fails leaves the others' rows filled."""
        self.notes.append(f"scale-out figures: {_loadavg()}; moto is an in-process Python S3 "
                          "stand-in, not AWS")
        result = scaleout.measure(self.work_dir, self.sets, quick=quick, runs=runs,
                                  attempt=self.attempt)
        for key, values in result.samples.items():
            self.samples[key].extend(values)
        self.notes.extend(result.notes)

    # --- card ingest ---------------------------------------------------------------------------

    def ingest_figures(self, run: int, runs: int) -> None:
        self.notes.append(f"card ingest, run {run + 1}/{runs}: {_loadavg()}")
        figure = ingest.measure(self.work_dir, self.sets["ingest"])
        for key, values in ingest.ingest_values(figure).items():
            self.samples[(PHOTONIC, key)].extend(values)
        self.notes.extend(figure.notes)

    # --- start-up ----------------------------------------------------------------------------

    def startup_figures(self, runs: int) -> None:
        self.notes.append(f"start-up figures: {_loadavg()}")
        figure = startup.measure(self.work_dir, runs=runs)
        for key, values in startup.startup_values(figure).items():
            self.samples[(PHOTONIC, key)].extend(values)

    # --- load figures ------------------------------------------------------------------------

    def load_syncing(self, shape: LoadShape) -> None:
        certs = load.ensure_pki(datagen.DEFAULT_CACHE_DIR, shape.pki_agents)
        self.notes.append(f"{shape.syncing_agents} agents syncing at once: {_loadavg()}")
        figure = load.concurrent_sync(
            self.work_dir, certs, self.sets["load"], shape.syncing_agents
        )
        for key, value in load.syncing_values(figure).items():
            self.record(PHOTONIC, key, value)
        if figure.refused_streams:
            self.notes.append(
                f"{shape.syncing_agents} agents syncing at once, sync streams the server "
                f"refused (the agents retried with fewer): {figure.refused_streams}"
            )

    def load_idle(self, shape: LoadShape) -> None:
        from photonic.agent.app import HEARTBEAT_INTERVAL_S

        certs = load.ensure_pki(datagen.DEFAULT_CACHE_DIR, shape.pki_agents)
        self.notes.append(f"{shape.idle_agents:,} idle agents: {_loadavg()}")
        figure = load.idle_agents(self.work_dir, certs, shape, HEARTBEAT_INTERVAL_S)
        self.notes.append(load.open_files_note(figure))
        self.notes.append(load.cpu_trace_note(figure))
        if figure.failures:
            self.notes.append(f"{shape.idle_agents:,} idle agents, failed RPCs: {figure.failures}")
        for key, value in load.idle_values(figure).items():
            self.record(PHOTONIC, key, value)
        for key, values in load.idle_raw_samples(figure).items():
            self.samples[(PHOTONIC, key)].extend(values)

    # --- jobs figures ------------------------------------------------------------------------

    def jobs_figures(self, quick: bool) -> None:
        self.notes.append(f"jobs figures: {_loadavg()}")
        figure = jobs.measure(self.work_dir, quick=quick)
        for key, values in jobs.jobs_values(figure).items():
            self.samples[(PHOTONIC, key)].extend(values)
        self.samples[(PHOTONIC, "jobs.dispatch.all")].extend(figure.dispatch_ms)
        self.samples[(PHOTONIC, "jobs.agent_start.all")].extend(figure.agent_processing_ms)

    # --- dashboard figures -------------------------------------------------------------------

    def dashboard_figures(self, quick: bool) -> None:
        self.notes.append(f"dashboard figures: {_loadavg()}")
        figure = dashboard.measure(self.work_dir, quick=quick)
        for key, values in dashboard.dashboard_values(figure).items():
            self.samples[(PHOTONIC, key)].extend(values)
        self.notes.extend(figure.notes)

    # --- Lightroom bridge figures ------------------------------------------------------------

    def lightroom_figures(self, quick: bool) -> None:
        self.notes.append(f"lightroom figures: {_loadavg()}")
        figure = lightroom.measure(self.work_dir, quick=quick)
        for key, values in lightroom.lightroom_values(figure).items():
            self.samples[(PHOTONIC, key)].extend(values)
        for key, values in lightroom.raw_samples(figure).items():
            self.samples[(PHOTONIC, key)].extend(values)

    # --- archive figures ---------------------------------------------------------------------

    def archive_figures(self, runs: int) -> None:
        self.notes.append(f"archive figures: {_loadavg()}")
        figure = archive.measure(self.work_dir, self.sets["archive"], runs=runs)
        for key, values in archive.archive_values(figure).items():
            self.samples[(PHOTONIC, key)].extend(values)
        self.notes.extend(figure.notes)


def _loadavg() -> str:
    try:
        return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "load average unknown"


def ensure_peers_installed() -> None:
    """Runs install-peers.sh when a peer program is missing (it is idempotent anyway)."""
    if (
        all(shutil.which(p) for p in ("rsync", "syncthing", "ssh"))
        and Path("/usr/sbin/sshd").exists()
    ):
        return
    subprocess.run(["bash", str(BENCH_DIR / "install-peers.sh")], check=True)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sets, one run: a few minutes")
    p.add_argument("--runs", type=int, help="runs per figure (default 3, quick 1; 0: scale only)")
    p.add_argument(
        "--tools",
        default=",".join(_FACTORIES),
        help="comma-separated subset of: " + ", ".join(_FACTORIES),
    )
    p.add_argument(
        "--sets",
        default=",".join(SYNC_SETS),
        help="comma-separated sets for the warm and cold first syncs: " + ", ".join(SYNC_SETS),
    )
    p.add_argument("--no-scale", action="store_true", help="skip the scale figures")
    p.add_argument("--no-load", action="store_true", help="skip the load figures")
    p.add_argument("--no-ingest", action="store_true", help="skip the card ingest figures")
    p.add_argument("--no-startup", action="store_true", help="skip the start-up figures")
    p.add_argument("--no-jobs", action="store_true", help="skip the jobs figures")
    p.add_argument("--no-lightroom", action="store_true",
                   help="skip the Lightroom bridge figures")
    p.add_argument("--no-dashboard", action="store_true", help="skip the dashboard figures")
    p.add_argument("--no-archive", action="store_true", help="skip the archive figures")
    p.add_argument("--no-scaleout", action="store_true",
                   help="skip the scale-out figures (PostgreSQL + S3)")
    p.add_argument(
        "--only",
        choices=GROUPS,
        help="run one group of figures: sync (the sets against the peers, and latency), "
        "ingest (the shoot set copied into a watched folder at a card reader's pace), "
        "startup (an idle `agent --once` and `status`, fresh processes), "
        "scale, load (many agents syncing at once, many idle agents), jobs (dispatch "
        "latency, a facecrop batch, recovery from a killed worker), or lightroom (job leased "
        "on the server -> a long-polling plugin receives it), or dashboard (web API pages over a "
        "100,000-photo catalog, event -> WebSocket latency, thumbnails), or archive (the large "
        "set's replication to an archive node against the agent's first sync, a full-speed "
        "scrub), or scaleout (first syncs on PostgreSQL + S3 against the embedded default, a "
        "manifest check over a PostgreSQL catalog, many agents on two servers)",
    )
    p.add_argument("--seed", type=int, default=datagen.DEFAULT_SEED)
    p.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def _run_all(
    bench: Bench,
    runs: int,
    sync_sets: Sequence[str],
    scale_args: tuple[int, int] | None,
    shape: LoadShape | None,
) -> None:
    plan = symmetric.interleaved_plan(runs, sync_sets, symmetric.MODES, bench.tools)
    for index, step in enumerate(plan):
        bench.step(step, runs)
        last_of_run = index + 1 == len(plan) or plan[index + 1].run != step.run
        if last_of_run and PHOTONIC in bench.tools:
            bench.attempt(
                f"photonic: latency, run {step.run + 1}/{runs}",
                functools.partial(bench.latency, step.run),
            )
    if PHOTONIC in bench.tools and scale_args is not None:
        # The first scan comes first: the restart reuses the index it leaves (cached).
        bench.attempt("photonic: first scan of a large folder", bench.first_scan)
        bench.attempt("photonic: restart over a large index", bench.restart_over_index)
        bench.attempt(
            "photonic: manifest check over a large catalog",
            lambda: bench.manifest_check(*scale_args),
        )
    if PHOTONIC in bench.tools and shape is not None:
        bench.attempt(
            f"photonic: {shape.syncing_agents} agents syncing at once",
            functools.partial(bench.load_syncing, shape),
        )
        bench.attempt(
            f"photonic: {shape.idle_agents:,} idle agents",
            functools.partial(bench.load_idle, shape),
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        stream=sys.stderr,
    )
    groups = _groups(args)
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    runs = runs if "sync" in groups else 0
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(tools) - _FACTORIES.keys()
    if unknown:
        print(f"unknown tools: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    sync_sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    if set(sync_sets) - set(SYNC_SETS):
        print(f"unknown sets: {', '.join(sorted(set(sync_sets) - set(SYNC_SETS)))}",
              file=sys.stderr)
        return 2
    started_utc = datetime.now(UTC).isoformat(timespec="seconds")
    load_at_start = _loadavg()
    started = time.perf_counter()
    shape = load.load_shape(quick=args.quick) if "load" in groups and PHOTONIC in tools else None
    specs = {}
    if groups & {"sync", "scale"}:
        ensure_peers_installed()
        wanted = {*(sync_sets if "sync" in groups else ()), "fresh"}
        if "scale" in groups:
            wanted.add("scale")
        # Only the sets this run uses are generated (the full scale set alone takes minutes).
        specs = {n: s for n, s in datagen.standard_sets(quick=args.quick).items() if n in wanted}
    if shape is not None:
        specs["load"] = load.load_set_spec(shape)
    if "archive" in groups and PHOTONIC in tools:
        # The sync figures' large set, under its own name (the sync group may not run).
        specs["archive"] = datagen.standard_sets(quick=args.quick)["large"]
    if "scaleout" in groups and PHOTONIC in tools:
        specs.update(scaleout.set_specs(quick=args.quick))
    if "ingest" in groups and PHOTONIC in tools:
        # A card of the shoot set, copied into a watched folder at a card reader's pace.
        specs["ingest"] = datagen.standard_sets(quick=args.quick)["shoot"]
    sets = {}
    for name, spec in specs.items():
        log.info("data set %s (%d files) ...", name, spec.count)
        sets[name] = datagen.ensure_set(spec, seed=args.seed)
    work_dir = datagen.DEFAULT_CACHE_DIR / "work"
    shutil.rmtree(work_dir, ignore_errors=True)
    bench = Bench(work_dir, sets, tools)
    scale_shape = scale.scale_shape(quick=args.quick)
    catalog_photos = scale_shape.catalog_photos
    scale_args = (catalog_photos, scale_shape.manifest_rounds) if "scale" in groups else None
    try:
        with trash.deferred_deletion(work_dir / "trash"):
            _run_all(bench, runs, sync_sets, scale_args, shape)
            if "ingest" in groups and PHOTONIC in tools:
                ingest_runs = args.runs or (1 if args.quick else 2)
                for run in range(ingest_runs):
                    bench.attempt(f"photonic: card ingest, run {run + 1}/{ingest_runs}",
                                  functools.partial(bench.ingest_figures, run, ingest_runs))
            if "startup" in groups and PHOTONIC in tools:
                bench.attempt("photonic: start-up", functools.partial(
                    bench.startup_figures,
                    args.runs or startup.startup_runs(quick=args.quick)))
            if "jobs" in groups and PHOTONIC in tools:
                bench.attempt("photonic: jobs", functools.partial(bench.jobs_figures, args.quick))
            if "lightroom" in groups and PHOTONIC in tools:
                bench.attempt("photonic: lightroom bridge",
                              functools.partial(bench.lightroom_figures, args.quick))
            if "dashboard" in groups and PHOTONIC in tools:
                bench.attempt("photonic: dashboard",
                              functools.partial(bench.dashboard_figures, args.quick))
            if "scaleout" in groups and PHOTONIC in tools:
                bench.scaleout_figures(args.quick, args.runs)
            if "archive" in groups and PHOTONIC in tools:
                archive_runs = args.runs or archive.archive_runs(quick=args.quick)
                bench.attempt("photonic: archive",
                              functools.partial(bench.archive_figures, archive_runs))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    counts = {name: ds.count for name, ds in sets.items()}
    figure_rows = []
    if groups & {"sync", "scale"}:
        figure_rows += figure_specs(counts, sync_sets if runs else [])
    if "scale" in groups and PHOTONIC in tools:
        figure_rows += scale.scale_figure_specs(counts["scale"], catalog_photos)
    if shape is not None:
        figure_rows += load_figure_specs(
            shape.syncing_agents, counts["load"], shape.idle_agents
        )
    if "jobs" in groups and PHOTONIC in tools:
        figure_rows += jobs.figure_specs(jobs.jobs_shape(quick=args.quick))
    if "lightroom" in groups and PHOTONIC in tools:
        figure_rows += lightroom.figure_specs(lightroom.lightroom_shape(quick=args.quick))
    if "dashboard" in groups and PHOTONIC in tools:
        figure_rows += dashboard.figure_specs(dashboard.dashboard_shape(quick=args.quick))
    if "archive" in sets:
        figure_rows += archive.figure_specs(sets["archive"].count, sets["archive"].total_bytes)
    if "ingest" in sets:
        figure_rows += ingest.figure_specs(sets["ingest"])
    if "startup" in groups and PHOTONIC in tools:
        figure_rows += startup.figure_specs()
    if "scaleout" in groups and PHOTONIC in tools:
        figure_rows += scaleout.figure_specs(
            sets, scaleout.scaleout_shape(quick=args.quick),
            load.load_shape(quick=args.quick).syncing_agents)
    rows = build_rows(figure_rows, bench.samples)
    report = Report(args.quick, rows, bench.samples, bench.errors, _context(args, runs, sets))
    report.context["wall_s"] = round(time.perf_counter() - started, 1)
    report.context["started_utc"] = started_utc
    report.context["sync_sets"] = sync_sets if runs else []
    report.context["loadavg_start"] = load_at_start
    report.context["loadavg_end"] = _loadavg()
    report.context["loadavg_by_step"] = [list(pair) for pair in bench.loadavg]
    report.context["groups"] = sorted(groups)
    report.context["notes"] = bench.notes
    if shape is not None:
        report.context["load_shape"] = dataclasses.asdict(shape)
    path = write_results(report, args.results_dir)
    print(markdown_table(rows))
    for note in bench.notes:
        print(f"\n{note}")
    for what, error in bench.errors.items():
        print(f"\nFAILED {what}: {error}")
    print(f"\nresults: {path}")
    return 0


def _groups(args: argparse.Namespace) -> set[str]:
    """The figure groups to run: --only picks one, each --no-<group> drops its group."""
    groups = {args.only} if args.only else set(GROUPS)
    if args.no_scale:
        groups.discard("scale")
    if args.no_load:
        groups.discard("load")
    if args.no_ingest:
        groups.discard("ingest")
    if args.no_startup:
        groups.discard("startup")
    if args.no_jobs:
        groups.discard("jobs")
    if args.no_lightroom:
        groups.discard("lightroom")
    if args.no_dashboard:
        groups.discard("dashboard")
    if args.no_archive:
        groups.discard("archive")
    if args.no_scaleout:
        groups.discard("scaleout")
    return groups


def _context(args: argparse.Namespace, runs: int, sets: dict[str, DataSet]) -> dict[str, object]:
    return {
        "runs": runs,
        "seed": args.seed,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "cpu_model": _cpu_model(),
        "memory": _mem_total(),
        "python": platform.python_version(),
        "photonic_commit": _git("rev-parse", "HEAD"),
        "photonic_tree_dirty": bool(_git("status", "--porcelain", "--", "photonic", "bench")),
        "sets": {n: {"files": d.count, "bytes": d.total_bytes} for n, d in sets.items()},
        "versions": _tool_versions(),
    }


def _cpu_model() -> str:
    for line in _read_lines("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _mem_total() -> str:
    for line in _read_lines("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            return " ".join(line.split()[1:])
    return "unknown"


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _git(*args: str) -> str:
    """Output of a git command in the repository, "" when git or the repository is missing."""
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              cwd=BENCH_DIR.parent)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _tool_versions() -> dict[str, str]:
    versions = {}
    for tool, argv in (
        ("rsync", ["rsync", "--version"]),
        ("syncthing", ["syncthing", "--version"]),
        ("ssh", ["ssh", "-V"]),
        ("grpcio", [sys.executable, "-c", "import grpc; print(grpc.__version__)"]),
    ):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            versions[tool] = (done.stdout or done.stderr).splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            versions[tool] = "missing"
    return versions


if __name__ == "__main__":
    sys.exit(main())
