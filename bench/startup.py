"""Start-up figures (issue 16): how long a fresh `photonic agent --once` takes when there is
nothing to do, and a fresh `photonic status`. `python -m bench.startup [--runs N]` alone, or
with the rest via `bench.run`.

Both are mostly interpreter start and imports, so they are measured as a user meets them: the
installed console script as a new process each time, wall clock from spawn to exit.

One measurement:
1. a server with its own PKI over mutual TLS (bench.peers.photonic.PhotonicPeer) and an agent
   whose small watch folder (FILES photos) is synced once with `agent --once`, untimed;
2. photonic's bytecode compiled (`compileall`, as pip does at install: with
   PYTHONDONTWRITEBYTECODE set, as in some dev shells, every module edited since its .pyc was
   written is otherwise compiled again at each start, ~10 ms for config.py alone), then one
   untimed warm-up of each command (the page cache, the TLS memo of photonic/tls_memo.py);
3. `runs` repetitions of: `agent --once` (checked to have hashed and sent nothing and seen
   every file), then `status` against that agent's state (checked to name the agent).
Each repetition is one sample of each figure; bench/report.py takes their median, min and max.
The CPU seconds of each process (user + system, from wait4) are kept beside the wall time:
on a shared machine they move less than the wall.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import random
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import datagen, trash
from bench.peers.photonic import PhotonicPeer, photonic_argv
from bench.report import PHOTONIC, FigureSpec, Target, TargetKind, build_rows, report_group_run

log = logging.getLogger("bench.startup")
BENCH_DIR = Path(__file__).resolve().parent
AGENT = "bench-agent"
FILES = 20
FILE_BYTES = 30_000
TARGET_S = 0.2
"""Issue 16: each command, as a fresh process with nothing to do, within 0.2 s wall."""
TIMEOUT_S = 120.0
AGENT_ONCE_KEY = "startup.agent_once_idle.s"
STATUS_KEY = "startup.status.s"
AGENT_ONCE_CPU_KEY = "startup.agent_once_idle.cpu_s"
STATUS_CPU_KEY = "startup.status.cpu_s"


@dataclass(frozen=True)
class Timed:
    """One finished command: its output, wall seconds and CPU seconds (user + system)."""

    stdout: str
    wall_s: float
    cpu_s: float


@dataclass
class StartupFigure:
    """Every sample: one per repetition of each command (wall and CPU seconds)."""

    agent_once: list[Timed] = field(default_factory=list)
    status: list[Timed] = field(default_factory=list)


def startup_runs(*, quick: bool) -> int:
    """Repetitions: each is two short processes, so many are cheap (quick: enough for a
    median)."""
    return 5 if quick else 20


def startup_values(figure: StartupFigure) -> dict[str, list[float]]:
    """The samples under their keys: one value per repetition (bench/report.py summarizes)."""
    return {
        AGENT_ONCE_KEY: [t.wall_s for t in figure.agent_once],
        STATUS_KEY: [t.wall_s for t in figure.status],
        AGENT_ONCE_CPU_KEY: [t.cpu_s for t in figure.agent_once],
        STATUS_CPU_KEY: [t.cpu_s for t in figure.status],
    }


def figure_specs() -> list[FigureSpec]:
    """The wall times carry the issue's bound; the CPU rows are context, without a target."""
    bound = Target(TargetKind.AT_MOST, TARGET_S)
    return [
        FigureSpec(f"start-up: `agent --once` with nothing to do ({FILES} files synced)", "s",
                   AGENT_ONCE_KEY, None, bound),
        FigureSpec("start-up: `status`", "s", STATUS_KEY, None, bound),
        FigureSpec("start-up CPU: `agent --once` with nothing to do", "CPU-s",
                   AGENT_ONCE_CPU_KEY),
        FigureSpec("start-up CPU: `status`", "CPU-s", STATUS_CPU_KEY),
    ]


def timed(argv: list[str]) -> Timed:
    """Runs argv to completion; raises with its stderr when it fails. CPU is the difference
    in this process's reaped children's usage, which only argv adds to meanwhile (the
    server is a child too, but still running, so not yet counted)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
    wall_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[-4:])} exited {proc.returncode}: "
                           f"{proc.stderr[-3000:]}")
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(proc.stdout, wall_s, cpu_s)


def write_photos(folder: Path, count: int = FILES, size: int = FILE_BYTES) -> None:
    """count files of size bytes, the same on every run (seeded): the agent only needs
    something to have synced, not real photos."""
    rng = random.Random(16)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"IMG_{i:04d}.jpg").write_bytes(b"\xff\xd8\xff" + rng.randbytes(size - 3))


def compile_photonic() -> None:
    """Writes the .pyc of every photonic module, whatever PYTHONDONTWRITEBYTECODE says."""
    spec = importlib.util.find_spec("photonic")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("photonic is not importable from this interpreter")
    subprocess.run([sys.executable, "-m", "compileall", "-q",
                    *spec.submodule_search_locations], check=True, capture_output=True,
                   timeout=TIMEOUT_S)


def _idle_summary(stdout: str) -> dict[str, object]:
    """The --once JSON summary, checked to be a run that had nothing to do."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"agent --once printed no JSON summary: {stdout!r}")
    summary: dict[str, object] = json.loads(lines[-1])
    busy = {k: summary.get(k) for k in ("files_hashed", "files_uploaded", "files_deduplicated")
            if summary.get(k) != 0}
    if busy or summary.get("files_seen") != FILES:
        raise RuntimeError(f"agent --once was not idle ({FILES} files synced): {summary}")
    return summary


def one_run(run_dir: Path, figure: StartupFigure, runs: int) -> None:
    """The server and synced agent of one measurement, then runs pairs of samples."""
    source = run_dir / "photos"
    write_photos(source)
    peer = PhotonicPeer(run_dir, agents=(AGENT,))
    try:
        peer.start_server()
        first = peer.run_once(AGENT, source)
        if first.files_done != FILES:
            raise RuntimeError(f"the first sync did {first.files_done} of {FILES} files")
        config = str(peer.agent_config(AGENT, source))
        once = [*photonic_argv(), "agent", "--config", config, "--once"]
        status = [*photonic_argv(), "status", "--config", config]
        compile_photonic()
        _idle_summary(timed(once).stdout)  # warm-up, not a sample
        timed(status)
        for rep in range(runs):
            sample = timed(once)
            _idle_summary(sample.stdout)
            figure.agent_once.append(sample)
            shown = timed(status)
            if f"agent {AGENT}:" not in shown.stdout:
                raise RuntimeError(f"status did not show the agent: {shown.stdout!r}")
            figure.status.append(shown)
            log.info("startup %d/%d: agent --once %.3f s, status %.3f s", rep + 1, runs,
                     sample.wall_s, shown.wall_s)
    finally:
        peer.close()


def measure(work_dir: Path, *, runs: int) -> StartupFigure:
    """`runs` samples of each figure, from one server and one synced agent."""
    figure = StartupFigure()
    run_dir = work_dir / "startup"
    if run_dir.exists():  # left by an interrupted run
        trash.discard(run_dir)
    run_dir.mkdir(parents=True)
    try:
        one_run(run_dir, figure, runs)
    finally:
        trash.discard(run_dir)
    return figure


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.startup",
                                description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--runs", type=int, help="repetitions (default 20, quick 5)")
    p.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    started = time.perf_counter()
    runs = args.runs or startup_runs(quick=args.quick)
    figure = measure(datagen.DEFAULT_CACHE_DIR / "work-startup", runs=runs)
    samples = {(PHOTONIC, k): v for k, v in startup_values(figure).items()}
    rows = build_rows(figure_specs(), samples)
    report_group_run("startup", args.quick, rows, samples, started, args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
