"""Ingest from a card: a photographer copies a card into a watched folder, photo after photo at
a card reader's pace; how soon is each photo durable on the server, and what does it cost?
`python -m bench.ingest [--quick] [--pace MB/s] [--data DIR]` alone, or via `bench.run`.

One run, on real daemons over mutual TLS (bench.peers.photonic.PhotonicPeer):
1. a fresh `photonic server` and an agent daemon watching an empty folder with the agent's
   default settle delays (`settle_delay` 2 s; `closed_settle_delay` 0.25 s once the writer
   closed the file, which a copy does), both up and connected: a warm-up photo goes through
   them before the clock;
2. the set's files are copied into the folder in capture order (sorted relative path), one
   at a time, each in 1 MiB chunks paced so that its copy takes size / pace (a chunk is
   written when a reader at that pace would have delivered it); the next copy starts when the
   previous one closed, never waiting for the server;
3. each file's latency runs from the close of its copy to the `ts` of the server's
   `event=file_committed` line for it (logged after the durable commit; same clock, ms);
   the clock stops at the last commit;
4. afterwards every library copy (`<storage>/library/<agent>/<watch>/<rel>`) is hashed against
   its source: missing and damaged files are counted (goal 0).
Peak RSS is each process tree's VmHWM at the end: both daemons start fresh for the run, so it
is the ingest's high-water mark (their start-up and the warm-up photo included). CPU is each
tree's CPU over the clock. The set must hold distinct contents: a duplicate is logged as
`file_deduplicated`, not committed, and would be reported missing.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import datagen, trash
from bench.datagen import DataSet
from bench.peers.base import relative_files
from bench.peers.photonic import PhotonicPeer, stop_process
from bench.procstat import CpuTrace, ProcUsage, read_rss_bytes, tree_usage, wait_until
from bench.report import (
    PHOTONIC,
    FigureSpec,
    Target,
    TargetKind,
    build_rows,
    percentile,
    report_group_run,
)

log = logging.getLogger("bench.ingest")
BENCH_DIR = Path(__file__).resolve().parent
AGENT = "bench-agent"
WATCH = "photos"
"""The watch name PhotonicPeer.agent_config gives the agent's one folder."""
DEFAULT_PACE_MB_S = 90.0
"""A UHS-I card in a USB 3 reader: about 90 MB/s of sustained reads."""
CHUNK_BYTES = 1 << 20
COMMIT_TIMEOUT_S = 600.0
"""How long after the last copy closed every file may still take to be committed."""
WARMUP_TIMEOUT_S = 120.0
P95_GOAL_S, AGENT_RSS_GOAL_MB, SERVER_RSS_GOAL_MB = 1.0, 150.0, 250.0
_MB = 1_000_000
_HASH_BYTES = 8 << 20


@dataclass(frozen=True)
class CopiedFile:
    """One paced copy into the watched folder: when it opened and closed (Unix seconds)."""

    relative_path: str
    size_bytes: int
    opened_unix_s: float
    closed_unix_s: float


@dataclass(frozen=True)
class CpuTraceSample:
    """One second of the ingest: percent of one core used by the agent and by the server,
    and percent of all cores the whole machine used (other work on a shared machine shows)."""

    agent_pct: float
    server_pct: float
    machine_pct: float


@dataclass(frozen=True)
class IngestFigure:
    """One ingest of a set: every copy with its latency, what each daemon spent, the check."""

    pace_mb_s: float
    copies: tuple[CopiedFile, ...]
    latencies_s: tuple[float, ...]
    """Per copy, in copy order: the server's commit of the file minus the copy's close."""
    seconds: float
    """The first copy's open to the last file's commit."""
    agent: ProcUsage
    server: ProcUsage
    """CPU over the clock; peak RSS the tree's VmHWM (each daemon's life, which is the run)."""
    missing: int = 0
    damaged: int = 0
    rss_at_start_bytes: tuple[int, int] = (0, 0)
    """(agent, server) VmRSS when the clock started: what the peaks grew from."""
    cpu_trace: tuple[CpuTraceSample, ...] = ()
    """Per second of the clock: the agent's and server's share of a core and the machine's."""
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> int:
        return len(self.copies)

    @property
    def payload_bytes(self) -> int:
        return sum(c.size_bytes for c in self.copies)

    @property
    def copy_seconds(self) -> float:
        """How long the card copy itself took (first open to last close)."""
        return self.copies[-1].closed_unix_s - self.copies[0].opened_unix_s

    def latency_percentile(self, q: float) -> float:
        return percentile(self.latencies_s, q)

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.payload_bytes / _MB / self.seconds


def ingest_values(figure: IngestFigure) -> dict[str, list[float]]:
    """One value per key of figure_specs (and, in the JSON only, the wall and copy seconds,
    the RSS each peak grew from, and how busy the whole machine was: median % of all cores)."""
    machine = ({"ingest.machine_busy_pct": [percentile([s.machine_pct for s in figure.cpu_trace],
                                                        50)]} if figure.cpu_trace else {})
    return machine | {
        "ingest.p50_s": [figure.latency_percentile(50)],
        "ingest.p95_s": [figure.latency_percentile(95)],
        "ingest.max_s": [max(figure.latencies_s)],
        "ingest.files_per_s": [figure.files_per_s],
        "ingest.mb_per_s": [figure.mb_per_s],
        "ingest.agent_rss_mb": [figure.agent.peak_rss_bytes / _MB],
        "ingest.server_rss_mb": [figure.server.peak_rss_bytes / _MB],
        "ingest.cpu_s.agent": [figure.agent.cpu_s],
        "ingest.cpu_s.server": [figure.server.cpu_s],
        "ingest.missing_or_damaged": [float(figure.missing + figure.damaged)],
        "ingest.s": [figure.seconds],
        "ingest.copy_s": [figure.copy_seconds],
        "ingest.agent_rss_start_mb": [figure.rss_at_start_bytes[0] / _MB],
        "ingest.server_rss_start_mb": [figure.rss_at_start_bytes[1] / _MB],
    }


def figure_specs(dataset: DataSet, pace_mb_s: float = DEFAULT_PACE_MB_S) -> list[FigureSpec]:
    """The ingest rows with the issue's goals (p95 <= 1 s, agent <= 150 MB, server <= 250 MB,
    nothing missing or damaged)."""
    what = (f"card ingest ({dataset.count} files, {dataset.total_bytes / 1e9:.2f} GB, copied "
            f"one by one at {pace_mb_s:g} MB/s into a watched folder)")
    lat = "copy closed -> durable on the server"
    return [
        FigureSpec(f"{what}: p50 {lat}", "s", "ingest.p50_s"),
        FigureSpec(f"{what}: p95 {lat}", "s", "ingest.p95_s",
                   target=Target(TargetKind.AT_MOST, P95_GOAL_S)),
        FigureSpec(f"{what}: max {lat}", "s", "ingest.max_s"),
        FigureSpec(f"{what}: files/s achieved (first copy -> last commit)", "files/s",
                   "ingest.files_per_s"),
        FigureSpec(f"{what}: MB/s achieved (first copy -> last commit)", "MB/s",
                   "ingest.mb_per_s"),
        FigureSpec(f"{what}: agent peak RSS", "MB", "ingest.agent_rss_mb",
                   target=Target(TargetKind.AT_MOST, AGENT_RSS_GOAL_MB)),
        FigureSpec(f"{what}: server peak RSS", "MB", "ingest.server_rss_mb",
                   target=Target(TargetKind.AT_MOST, SERVER_RSS_GOAL_MB)),
        FigureSpec(f"{what}: agent CPU", "CPU s", "ingest.cpu_s.agent"),
        FigureSpec(f"{what}: server CPU", "CPU s", "ingest.cpu_s.server"),
        FigureSpec(f"{what}: files missing or not byte-identical in the library", "files",
                   "ingest.missing_or_damaged", target=Target(TargetKind.AT_MOST, 0)),
    ]


# --- the card copy ---------------------------------------------------------------------------


def copy_paced(
    source: Path,
    target: Path,
    pace_bytes_per_s: float,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Copies source to target no faster than pace: each chunk is written once a reader at
    that pace would have delivered it, so the copy takes size / pace and the file grows as a
    card copy's does (not written at once and then idle, which a watcher would settle early)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    started = clock()
    written = 0
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(chunk_bytes):
            written += len(chunk)
            delay = started + written / pace_bytes_per_s - clock()
            if delay > 0:
                sleep(delay)
            writer.write(chunk)


def copy_card(
    dataset: DataSet,
    folder: Path,
    pace_mb_s: float,
    *,
    between: Callable[[], None] = lambda: None,
) -> list[CopiedFile]:
    """Copies the set into folder in capture order, one file after the other at the pace;
    between runs after each copy (the caller checks its daemons there)."""
    copies: list[CopiedFile] = []
    for index, (rel, size) in enumerate(sorted(dataset.files)):
        opened = time.time()
        copy_paced(dataset.root / rel, folder / rel, pace_mb_s * _MB)
        copies.append(CopiedFile(rel, size, opened, time.time()))
        between()
        if (index + 1) % 50 == 0:
            log.info("ingest: copied %d of %d files", index + 1, dataset.count)
    return copies


# --- the run ---------------------------------------------------------------------------------


class CommitWatch:
    """Reads the server's log for the commits of the copied files and says which are late."""

    def __init__(self, peer: PhotonicPeer, agent: subprocess.Popen[bytes]) -> None:
        self._peer = peer
        self._agent = agent

    def check_agent(self) -> None:
        if self._agent.poll() is not None:
            raise RuntimeError(f"photonic agent exited with {self._agent.returncode}")

    def pending(self, copies: Iterable[CopiedFile]) -> list[str]:
        """The copies without a commit since their close (an earlier commit would be of a
        partial file the agent took too soon; its final version is still to come)."""
        self.check_agent()
        self._peer.log.poll()
        done = self._peer.log.committed_at
        return [c.relative_path for c in copies
                if done.get(c.relative_path, 0.0) < c.closed_unix_s]

    def wait_all(self, copies: Sequence[CopiedFile], timeout_s: float) -> None:
        """Waits until every copy is committed; the error names what is still missing."""
        left: list[str] = []

        def all_done() -> bool:
            left[:] = self.pending(copies)
            return not left

        try:
            wait_until(all_done, timeout_s=timeout_s, interval_s=0.05,
                       what="the server to commit every copied file")
        except TimeoutError:
            shown = ", ".join(left[:10]) + (" ..." if len(left) > 10 else "")
            raise TimeoutError(
                f"{len(left)} of {len(copies)} copied files not committed by the server "
                f"{timeout_s:.0f} s after the copy: {shown}; server log tail: "
                f"{self._peer.server_log_tail(1500)}") from None


def warm_up(watch: CommitWatch, folder: Path) -> None:
    """A small photo through agent and server, so both are up and connected before the clock."""
    path = folder / "warmup-ingest.jpg"
    path.write_bytes(datagen.tiny_photo_bytes(seed=int(time.time_ns() % 2**31)))
    copy = CopiedFile(path.name, path.stat().st_size, time.time(), time.time())
    watch.wait_all([copy], WARMUP_TIMEOUT_S)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BYTES):
            digest.update(block)
    return digest.hexdigest()


def verify_library(dataset: DataSet, library: Path) -> tuple[int, int]:
    """(missing, damaged): the set's files absent from the library folder, and those whose
    bytes differ from the source's."""
    missing = damaged = 0
    for rel, _size in dataset.files:
        copy = library / rel
        if not copy.is_file():
            missing += 1
        elif file_sha256(copy) != file_sha256(dataset.root / rel):
            damaged += 1
    return missing, damaged


def ingest_once(run_dir: Path, dataset: DataSet, pace_mb_s: float,
                commit_timeout_s: float) -> IngestFigure:
    """The whole scenario on a fresh server and agent under run_dir (module docstring)."""
    card = run_dir / "card"
    card.mkdir(parents=True)
    peer = PhotonicPeer(run_dir, agents=(AGENT,))
    try:
        peer.start_server()
        agent = peer.start_agent(AGENT, card)
        try:
            watch = CommitWatch(peer, agent)
            warm_up(watch, card)
            before = tree_usage(agent.pid), tree_usage(peer.server_pid)
            rss_at_start = read_rss_bytes(agent.pid), read_rss_bytes(peer.server_pid)
            log.info("ingest: copying %d files (%.2f GB) at %g MB/s ...", dataset.count,
                     dataset.total_bytes / 1e9, pace_mb_s)
            with CpuTrace(agent.pid) as agent_trace, CpuTrace(peer.server_pid) as server_trace:
                copies = copy_card(dataset, card, pace_mb_s, between=watch.check_agent)
                watch.wait_all(copies, commit_timeout_s)
            committed = peer.log.committed_at
            last_commit = max(committed[c.relative_path] for c in copies)
            after = tree_usage(agent.pid), tree_usage(peer.server_pid)
        finally:
            stop_process(agent)
        latencies = tuple(committed[c.relative_path] - c.closed_unix_s for c in copies)
        log.info("ingest: verifying %d library copies ...", len(copies))
        missing, damaged = verify_library(dataset, peer.storage / "library" / AGENT / WATCH)
    finally:
        peer.close()
    return IngestFigure(
        pace_mb_s, tuple(copies), latencies, last_commit - copies[0].opened_unix_s,
        after[0].minus(before[0]), after[1].minus(before[1]), missing, damaged, rss_at_start,
        tuple(CpuTraceSample(a.process_pct, s.process_pct, s.machine_pct)
              for a, s in zip(agent_trace.samples, server_trace.samples, strict=False)))


def measure(work_dir: Path, dataset: DataSet, *, pace_mb_s: float = DEFAULT_PACE_MB_S,
            commit_timeout_s: float = COMMIT_TIMEOUT_S) -> IngestFigure:
    """One card ingest of dataset (module docstring); its files are gone afterwards."""
    if not dataset.files:
        raise ValueError(f"data set {dataset.name} has no files to ingest")
    run_dir = work_dir / "ingest"
    if run_dir.exists():  # left by an interrupted run
        trash.discard(run_dir)
    try:
        figure = ingest_once(run_dir, dataset, pace_mb_s, commit_timeout_s)
    finally:
        trash.discard(run_dir)
    figure.notes.append(
        f"ingest: {figure.files} files copied in {figure.copy_seconds:.1f} s at "
        f"{pace_mb_s:g} MB/s, last commit {figure.seconds:.1f} s after the first copy began; "
        f"{figure.missing} missing, {figure.damaged} damaged; peak RSS agent "
        f"{figure.agent.peak_rss_bytes / _MB:.0f} MB (from {figure.rss_at_start_bytes[0] / _MB:.0f}"
        f" MB before the first copy), server {figure.server.peak_rss_bytes / _MB:.0f} MB (from "
        f"{figure.rss_at_start_bytes[1] / _MB:.0f} MB); {cpu_trace_note(figure.cpu_trace)}")
    return figure


def cpu_trace_note(trace: Sequence[CpuTraceSample]) -> str:
    """How busy the daemons and the whole machine were during the ingest, so a slow tail can
    be told apart from other work competing for the cores."""
    if not trace:
        return "no CPU trace"
    machine = sorted(s.machine_pct for s in trace)
    busy = sum(1 for v in machine if v >= 85)
    agent = percentile([s.agent_pct for s in trace], 50)
    server = percentile([s.server_pct for s in trace], 50)
    return (f"per second over {len(trace)} s: agent {agent:.0f}% of a core, server "
            f"{server:.0f}% (medians), whole machine {percentile(machine, 50):.0f}% of all "
            f"cores (max {machine[-1]:.0f}%; >= 85% in {busy} s)")


# --- standalone ------------------------------------------------------------------------------


def dataset_from_folder(root: Path) -> DataSet:
    """Any folder of files as a set (the files below it, manifest.json aside)."""
    files = tuple((rel, (root / rel).stat().st_size) for rel in relative_files(root)
                  if rel != "manifest.json")
    return DataSet(root.name, root, files)


def _dataset(args: argparse.Namespace) -> DataSet:
    if args.data is not None:
        return dataset_from_folder(args.data)
    sets = datagen.standard_sets(quick=args.quick)
    if args.set not in sets:
        raise SystemExit(f"bench.datagen has no {args.set!r} set (it has {', '.join(sets)}); "
                         "pass --data DIR to ingest a folder of your own")
    return datagen.ensure_set(sets[args.set])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest",
                                description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="the quick variant of the set")
    p.add_argument("--pace", type=float, default=DEFAULT_PACE_MB_S, metavar="MB/s",
                   help=f"the card reader's pace (default {DEFAULT_PACE_MB_S:g})")
    p.add_argument("--set", default="shoot", help="the bench.datagen set (default shoot)")
    p.add_argument("--data", type=Path, help="ingest the files of this folder instead")
    p.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    started = time.perf_counter()
    dataset = _dataset(args)
    figure = measure(datagen.DEFAULT_CACHE_DIR / "work-ingest", dataset, pace_mb_s=args.pace)
    samples = {(PHOTONIC, k): v for k, v in ingest_values(figure).items()}
    rows = build_rows(figure_specs(dataset, args.pace), samples)
    report_group_run("ingest", args.quick, rows, samples, started, args.results_dir)
    for note in figure.notes:
        print(f"\n{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
