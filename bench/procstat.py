"""CPU time and peak memory of benchmarked processes, read from /proc and wait4 (no psutil)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcUsage:
    """CPU seconds (own + reaped children) and peak resident set size of one process."""

    cpu_s: float
    peak_rss_bytes: int

    def minus(self, earlier: ProcUsage) -> ProcUsage:
        """CPU spent since `earlier`; peak RSS is a high-water mark, so it is kept as is."""
        return ProcUsage(self.cpu_s - earlier.cpu_s, self.peak_rss_bytes)


@dataclass(frozen=True)
class CommandResult:
    """What a finished benchmark command did: exit code, output, wall time and usage."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    usage: ProcUsage


def read_usage(pid: int) -> ProcUsage:
    """Usage of a live process, including children it has reaped (daemons that fork)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Field 2 (comm) may contain spaces; everything after the last ')' is fixed-position.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    cpu_s = (utime + stime + cutime + cstime) / _TICKS_PER_S
    peak_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kib = int(line.split()[1])
    return ProcUsage(cpu_s, peak_kib * 1024)


GNU_TIME = Path("/usr/bin/time")


def run_measured(
    argv: Sequence[str],
    *,
    timeout_s: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> CommandResult:
    """Runs a command to completion; wait4 gives its CPU, GNU time its peak RSS (both
    including descendants).

    The peak RSS cannot come from this process's wait4: Linux carries the forking process's
    own high-water mark into a child's ru_maxrss at exec, so every command would report at
    least the harness's size (which grows to ~240 MB holding the 200,000-file plan). GNU
    time forks the command from its own few-MB process instead."""
    if not GNU_TIME.exists():
        raise RuntimeError(f"{GNU_TIME} (Debian package `time`) is needed to measure peak "
                           "memory: run scripts/install-system-deps.sh with PHOTONIC_BENCH=1")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r") as peak:
        started = time.perf_counter()
        wrapped = [str(GNU_TIME), "--format=%M", f"--output={peak.name}", *argv]
        proc = subprocess.Popen(wrapped, stdout=out, stderr=err, env=env, cwd=cwd)
        # A timer kills a hung command, so the blocking wait4 below is still bounded in time.
        killer = threading.Timer(timeout_s, proc.kill)
        killer.start()
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall_s = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if wall_s >= timeout_s:
            raise TimeoutError(f"{argv[0]} did not finish within {timeout_s:.0f} s")
        out.seek(0)
        err.seek(0)
        lines = peak.read().split()
        peak_kib = int(lines[-1]) if lines and lines[-1].isdigit() else 0
        usage = ProcUsage(rusage.ru_utime + rusage.ru_stime, peak_kib * 1024)
        return CommandResult(
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            wall_s,
            usage,
        )


def wait_until(
    predicate: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.05, what: str
) -> float:
    """Polls predicate until true; returns the seconds it took. Raises TimeoutError naming what."""
    started = time.perf_counter()
    deadline = started + timeout_s
    while True:
        if predicate():
            return time.perf_counter() - started
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)
