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
from typing import Self

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


def child_pids(pid: int) -> list[int]:
    """The live (or not yet reaped) children of pid, from every thread's children list (a Go
    program forks from whichever thread it is on)."""
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids += [int(p) for p in task.read_text().split()]
        except OSError:  # the thread ended between the glob and the read
            continue
    return pids


def tree_usage(pid: int) -> ProcUsage:
    """Usage of a process and every descendant alive now: CPU summed (each one's reaped
    children included, so a child that exits between two readings moves into its parent's
    figure, not out of the sum), peak RSS the highest of any one process.

    Daemons that fork per connection (sshd, rsync --daemon) or run as a monitor plus a worker
    (Syncthing) are measured whole this way; a before/after difference is what the tree spent."""
    try:
        own = read_usage(pid)
    except OSError:  # gone between the parent's children list and this read
        return ProcUsage(0.0, 0)
    usages = [own, *(tree_usage(child) for child in child_pids(pid))]
    return ProcUsage(sum(u.cpu_s for u in usages), max(u.peak_rss_bytes for u in usages))


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


def read_rss_bytes(pid: int) -> int:
    """The process's resident set size now (VmRSS), 0 when /proc does not show it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def read_open_files_limit(pid: int) -> tuple[int, int]:
    """(soft, hard) RLIMIT_NOFILE of a live process, from /proc/<pid>/limits; -1 is unlimited."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return _limit(soft), _limit(hard)
    raise RuntimeError(f"/proc/{pid}/limits has no 'Max open files' line")


def _limit(text: str) -> int:
    return -1 if text == "unlimited" else int(text)


class Background:
    """A thread that runs `_run` while a `with` block lasts; `_stop` ends it (wait on it
    between steps: `while not self._stop.wait(interval): ...`)."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError


class RssSampler(Background):
    """Samples a process's VmRSS on a thread and keeps the peak, so a figure can report the
    highest RSS within a window (VmHWM is the peak since the process started)."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        super().__init__("rss-sampler")
        self._pid = pid
        self._interval_s = interval_s
        self.peak_bytes = 0
        self.last_bytes = 0
        self.samples = 0

    def __enter__(self) -> Self:
        self.sample()
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.sample()

    def sample(self) -> None:
        try:
            rss = read_rss_bytes(self._pid)
        except OSError:  # the process is gone; the peak so far stands
            return
        self.last_bytes = rss
        self.peak_bytes = max(self.peak_bytes, rss)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()


def read_machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat's cpu line;
    busy is everything but idle and iowait."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # guest time is already counted in user and nice
    idle = fields[3] + fields[4]
    return (total - idle) / _TICKS_PER_S, total / _TICKS_PER_S


@dataclass(frozen=True)
class CpuSample:
    """One second of a CpuTrace: when it ended (Unix s), and the share of one core the
    process used and the share of all cores the whole machine used, in percent."""

    unix_s: float
    process_pct: float
    machine_pct: float


class CpuTrace(Background):
    """Every `interval_s`, how busy one process and the whole machine were: tells whether a
    slow moment came from the process itself or from other work on the machine."""

    def __init__(self, pid: int, interval_s: float = 1.0) -> None:
        super().__init__("cpu-trace")
        self._pid = pid
        self._interval_s = interval_s
        self.samples: list[CpuSample] = []

    def _run(self) -> None:
        try:
            last_proc, last_machine = read_usage(self._pid).cpu_s, read_machine_cpu()
            last_t = time.perf_counter()
            while not self._stop.wait(self._interval_s):
                proc, machine, now = read_usage(self._pid).cpu_s, read_machine_cpu(), \
                    time.perf_counter()
                total = machine[1] - last_machine[1]
                self.samples.append(CpuSample(
                    time.time(),
                    100 * (proc - last_proc) / (now - last_t),
                    100 * (machine[0] - last_machine[0]) / total if total else 0.0,
                ))
                last_proc, last_machine, last_t = proc, machine, now
        except OSError:  # the process is gone: the trace ends there
            return
