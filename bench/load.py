"""Load figures: many agents syncing at once into one server, and many idle agents heartbeating.

Both run the real server daemon. The syncing agents are real `photonic agent --once`
processes, each with its own certificate and photos; the idle agents are simulated by
bench/load_client.py (one mTLS connection, registration and heartbeats per agent identity).
Certificates for every agent identity are made once and cached under bench/.data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import trash
from bench.datagen import DataSet, FileKind, SetSpec
from bench.load_client import raise_open_files_limit
from bench.peers.photonic import PhotonicPeer, parse_logfmt
from bench.procstat import (
    CpuSample,
    CpuTrace,
    RssSampler,
    read_open_files_limit,
    read_rss_bytes,
)
from bench.report import percentile

log = logging.getLogger("bench.load")
AGENT_PREFIX = "load-"
_WATCH_NAME = "photos"  # the watch name PhotonicPeer gives every agent
_PKI_MARKER = "complete.json"
_PKI_MIN_DAYS_LEFT = 30
_MB = 1_000_000
_FD_HEADROOM = 256  # the server's own files: logs, the catalog, the store, listeners


@dataclass(frozen=True)
class LoadShape:
    """How big the load figures are; quick keeps the shape and shrinks the counts."""

    syncing_agents: int
    photos_per_agent: int
    idle_agents: int
    idle_ramp_s: float  # connections spread over this long
    idle_steady_s: float  # then every agent heartbeats for this long, after one interval
    idle_client_processes: int

    @property
    def pki_agents(self) -> int:
        return max(self.syncing_agents, self.idle_agents)


def load_shape(*, quick: bool) -> LoadShape:
    if quick:
        return LoadShape(5, 20, 100, 5.0, 20.0, 1)
    return LoadShape(20, 50, 1000, 20.0, 60.0, 2)


def load_set_spec(shape: LoadShape) -> SetSpec:
    """The syncing agents' photos: small JPEGs like the small set's, content of their own."""
    count = shape.syncing_agents * shape.photos_per_agent
    return SetSpec("load", FileKind.JPEG, count, 100_000, 200_000, 1000, 667)


def agent_ids(count: int) -> list[str]:
    return [f"{AGENT_PREFIX}{i:04d}" for i in range(count)]


def split_evenly(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """Contiguous slices whose sizes differ by at most one, in order; none lost, none shared."""
    if parts < 1:
        raise ValueError("at least one part")
    size, extra = divmod(len(items), parts)
    slices, start = [], 0
    for index in range(parts):
        stop = start + size + (1 if index < extra else 0)
        slices.append(list(items[start:stop]))
        start = stop
    return slices


# --- certificates ----------------------------------------------------------------------------


def ensure_pki(cache_dir: Path, agents: int) -> Path:
    """A CA, the server's certificate and `agents` agent certificates, made once and reused
    while none is missing and every one is valid for another month."""
    directory = cache_dir / "load-pki"
    if _pki_usable(directory, agents):
        return directory
    from photonic.pki import init_pki, issue_agent_cert

    started = time.perf_counter()
    (directory / _PKI_MARKER).unlink(missing_ok=True)
    init_pki(directory, force=True)
    for agent in agent_ids(agents):
        issue_agent_cert(directory, agent, force=True)
    valid_until = time.time() + 825 * 86400
    (directory / _PKI_MARKER).write_text(json.dumps({"agents": agents, "valid_until": valid_until}))
    log.info("made %d agent certificates in %.1f s", agents, time.perf_counter() - started)
    return directory


def _pki_usable(directory: Path, agents: int) -> bool:
    try:
        marker = json.loads((directory / _PKI_MARKER).read_text())
    except (OSError, ValueError):
        return False
    if marker.get("agents", 0) < agents:
        return False
    if marker.get("valid_until", 0) < time.time() + _PKI_MIN_DAYS_LEFT * 86400:
        return False
    return all((directory / f"{a}.key").exists() for a in agent_ids(agents))


# --- many agents syncing at once ----------------------------------------------------------


@dataclass(frozen=True)
class SyncingFigure:
    """`agents` agent processes syncing their own photos at once into one fresh server."""

    agents: int
    files: int
    payload_bytes: int
    wall_s: float  # launch of the first agent to exit of the last (all durable)
    server_peak_rss_bytes: int
    server_cpu_s: float
    missing_or_damaged: int  # photos not in the library with the source's SHA-256
    agents_cpu_s: float  # every agent process together, start-up included
    refused_streams: dict[str, int]  # the server's sync_stream_refused lines, by reason


def server_limits(agents: int, syncs_per_agent: int = 4) -> dict[str, object]:
    """The server's `limits:` for the load figures: room for every agent and every agent's
    default four streams; every other limit (memory budgets) stays at its default."""
    return {
        "max_agents": agents + 10,
        "max_concurrent_syncs": max(16, agents * syncs_per_agent),
        "max_syncs_per_agent": syncs_per_agent,
    }


def concurrent_sync(work_dir: Path, certs: Path, dataset: DataSet, agents: int) -> SyncingFigure:
    """Each agent gets an equal share of the set; all start at once; the wall time runs until
    the last `agent --once` exits (its queue empty: every photo acknowledged as durable)."""
    run_dir = work_dir / "load-sync"
    ids = agent_ids(agents)
    shares = split_evenly([rel for rel, _ in dataset.files], agents)
    sources = [_link_share(dataset.root, share, run_dir / f"source-{i}") for i, share in
               enumerate(shares)]
    peer = PhotonicPeer(run_dir, agents=(), certs=certs, limits=server_limits(agents))
    try:
        peer.start_server()
        before = peer.server_usage()
        with ThreadPoolExecutor(max_workers=agents) as pool:
            started = time.perf_counter()
            runs = list(pool.map(peer.run_once, ids, sources))
            wall_s = time.perf_counter() - started
        usage = peer.server_usage()
        short = [(a, r.summary) for a, r, s in zip(ids, runs, shares, strict=True)
                 if r.files_done < len(s)]
        if short:
            log.warning("agents that reported fewer files than they hold: %s", short)
        missing = count_missing(peer.storage / "library", dataset.root, ids, shares)
        refused = refusals(peer.server_log_path.read_text(errors="replace"))
    finally:
        peer.close()
        trash.discard(run_dir)
    return SyncingFigure(agents, dataset.count, dataset.total_bytes, wall_s,
                         usage.peak_rss_bytes, usage.cpu_s - before.cpu_s, missing,
                         sum(r.command.usage.cpu_s for r in runs), refused)


def refusals(server_log: str) -> dict[str, int]:
    """The server's `event=sync_stream_refused` lines counted by reason, with the numbers in
    the reason (agent ids, sizes) kept, since they name the limit that was reached."""
    counts: dict[str, int] = {}
    for line in server_log.splitlines():
        if "sync_stream_refused" not in line:
            continue
        fields = parse_logfmt(line)
        if fields.get("event") == "sync_stream_refused":
            reason = fields.get("reason", "?")
            counts[reason] = counts.get(reason, 0) + 1
    return counts


def _link_share(root: Path, relative_paths: Sequence[str], destination: Path) -> Path:
    for rel in relative_paths:
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(root / rel, target)
    return destination


def count_missing(library: Path, source_root: Path, ids: Sequence[str],
                  shares: Sequence[Sequence[str]]) -> int:
    """Photos whose library copy (library/<agent>/<watch>/<path>) is absent or differs in
    SHA-256 from the source."""
    missing = 0
    for agent, share in zip(ids, shares, strict=True):
        for rel in share:
            stored = library / agent / _WATCH_NAME / rel
            if not stored.exists() or _sha256(stored) != _sha256(source_root / rel):
                missing += 1
    return missing


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


# --- many idle agents ----------------------------------------------------------------------


@dataclass
class IdleFigure:
    """`agents` connected agents that only heartbeat, against one fresh server."""

    agents: int
    registered: int
    heartbeat_ms: list[float]  # steady state: every agent connected and registered
    heartbeat_sent_unix_s: list[float]  # when each of heartbeat_ms was sent
    heartbeat_client: list[int]  # which client process sent it
    ramp_heartbeat_ms: list[float]
    register_ms: list[float]
    failures: dict[str, int]
    server_base_rss_bytes: int  # started, nothing connected
    server_peak_rss_bytes: int
    server_end_rss_bytes: int
    server_cpu_s: float
    window_s: float
    open_files: dict[str, list[int]] = field(default_factory=dict)
    cpu_trace: list[CpuSample] = field(default_factory=list)  # server and machine, per second


def idle_agents(work_dir: Path, certs: Path, shape: LoadShape, interval_s: float) -> IdleFigure:
    """Starts a server, then the load clients, and samples the server's RSS until they end."""
    ids = agent_ids(shape.idle_agents)
    open_files = {"bench": list(raise_open_files_limit(len(ids) + _FD_HEADROOM))}
    run_dir = work_dir / "load-idle"
    run_dir.mkdir(parents=True)
    peer = PhotonicPeer(run_dir, agents=(), certs=certs, limits=server_limits(len(ids)))
    try:
        peer.start_server()
        pid = peer.server_pid
        open_files["server"] = list(read_open_files_limit(pid))
        base_rss = read_rss_bytes(pid)
        before = peer.server_usage()
        started = time.perf_counter()
        with RssSampler(pid) as rss, CpuTrace(pid) as trace:
            outputs = _run_clients(peer.server_port, certs, ids, shape, interval_s)
        window_s = time.perf_counter() - started
        usage = peer.server_usage()
    finally:
        peer.close()
        trash.discard(run_dir)
    figure = IdleFigure(len(ids), 0, [], [], [], [], [], {}, base_rss,
                        max(rss.peak_bytes, usage.peak_rss_bytes), rss.last_bytes,
                        usage.cpu_s - before.cpu_s, window_s, open_files, trace.samples)
    for index, out in enumerate(outputs):
        figure.registered += out["registered"]
        figure.heartbeat_ms += out["steady_ms"]
        figure.heartbeat_sent_unix_s += out["steady_sent_unix_s"]
        figure.heartbeat_client += [index] * len(out["steady_ms"])
        figure.ramp_heartbeat_ms += out["ramp_ms"]
        figure.register_ms += out["register_ms"]
        for what, count in out["failures"].items():
            figure.failures[what] = figure.failures.get(what, 0) + count
        figure.open_files[f"client-{index}"] = out["open_files_limit"]
    return figure


def _run_clients(port: int, certs: Path, ids: Sequence[str], shape: LoadShape,
                 interval_s: float) -> list[dict[str, Any]]:
    timeout_s = shape.idle_ramp_s + interval_s + shape.idle_steady_s + 120
    procs = []
    for share in split_evenly(ids, shape.idle_client_processes):
        argv = [sys.executable, "-m", "bench.load_client", "--target", f"127.0.0.1:{port}",
                "--certs", str(certs), "--agents", ",".join(share),
                "--ramp-s", str(shape.idle_ramp_s), "--steady-s", str(shape.idle_steady_s),
                "--interval-s", str(interval_s)]
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      cwd=Path(__file__).resolve().parent.parent))
    outputs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"load client exited {proc.returncode}: {stderr.decode()[-2000:]}")
        outputs.append(json.loads(stdout))
    return outputs


def open_files_note(figure: IdleFigure) -> str:
    """One line saying each side's open-files limit and whether it covers every connection."""
    needed = figure.agents + _FD_HEADROOM
    parts, short = [], []
    for side, (soft, hard) in sorted(figure.open_files.items()):
        parts.append(f"{side} {_limit_text(soft)}/{_limit_text(hard)}")
        if soft != resource.RLIM_INFINITY and soft < needed:
            short.append(side)
    verdict = (f"too low for {figure.agents:,} connections (could not raise): {', '.join(short)}"
               if short else f"enough for {figure.agents:,} connections")
    return f"open files (soft/hard): {', '.join(parts)}; {verdict}"


def _limit_text(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)


def heartbeat_percentiles(latencies_ms: Sequence[float]) -> dict[str, float]:
    """p50, p95 and p99 of the heartbeat round trips; empty when there were none."""
    if not latencies_ms:
        return {}
    return {f"p{q}": percentile(latencies_ms, q) for q in (50, 95, 99)}


def rss_mb(value: int) -> float:
    return value / _MB


def cpu_trace_note(figure: IdleFigure) -> str:
    """How busy the server and the whole machine were while the idle agents ran, so a slow
    heartbeat tail can be told apart from other work competing for the cores."""
    trace = figure.cpu_trace
    if not trace:
        return f"{figure.agents:,} idle agents: no CPU trace"
    machine = sorted(s.machine_pct for s in trace)
    server = sorted(s.process_pct for s in trace)
    busy = sum(1 for v in machine if v >= 85)
    return (f"{figure.agents:,} idle agents, per second over {len(trace)} s: server "
            f"{percentile(server, 50):.0f}% of a core (max {server[-1]:.0f}%), whole machine "
            f"{percentile(machine, 50):.0f}% of all cores (max {machine[-1]:.0f}%; "
            f">= 85% in {busy} s)")


def syncing_values(figure: SyncingFigure) -> dict[str, float]:
    """The figure keys (bench/figures.py) and values of one run of agents syncing at once."""
    return {
        "load.sync.s": figure.wall_s,
        "load.sync.files_per_s": figure.files / figure.wall_s,
        "load.sync.server_rss_mb": rss_mb(figure.server_peak_rss_bytes),
        "load.sync.server_cpu_s": figure.server_cpu_s,
        "load.sync.agents_cpu_s": figure.agents_cpu_s,
        "load.sync.streams_refused": float(sum(figure.refused_streams.values())),
        "load.sync.missing": float(figure.missing_or_damaged),
    }


def idle_values(figure: IdleFigure) -> dict[str, float]:
    """The figure keys (bench/figures.py) and values of one idle-agents run."""
    grown = figure.server_peak_rss_bytes - figure.server_base_rss_bytes
    values = {
        "load.idle.server_base_rss_mb": rss_mb(figure.server_base_rss_bytes),
        "load.idle.server_rss_mb": rss_mb(figure.server_peak_rss_bytes),
        "load.idle.rss_per_agent_kb": grown / max(1, figure.registered) / 1000,
        "load.idle.server_cpu_pct": 100 * figure.server_cpu_s / figure.window_s,
        "load.idle.registered": float(figure.registered),
        "load.idle.failures": float(sum(figure.failures.values())),
    }
    for name, value in heartbeat_percentiles(figure.heartbeat_ms).items():
        values[f"load.idle.heartbeat.{name}"] = value
    return values


def idle_raw_samples(figure: IdleFigure) -> dict[str, list[float]]:
    """Every heartbeat (round trip, seconds since the first steady one, client process), the
    ramp's heartbeats and registrations, and the CPU trace on the same clock, for the JSON."""
    first = min(figure.heartbeat_sent_unix_s, default=0.0)
    trace = figure.cpu_trace
    return {
        "load.idle.heartbeat_ms.all": [round(v, 3) for v in figure.heartbeat_ms],
        "load.idle.heartbeat_sent_s.all": [round(t - first, 4)
                                           for t in figure.heartbeat_sent_unix_s],
        "load.idle.heartbeat_client.all": [float(c) for c in figure.heartbeat_client],
        "load.idle.ramp_heartbeat_ms.all": [round(v, 3) for v in figure.ramp_heartbeat_ms],
        "load.idle.register_ms.all": [round(v, 3) for v in figure.register_ms],
        "load.idle.trace_s.all": [round(c.unix_s - first, 2) for c in trace],
        "load.idle.trace_server_cpu_pct.all": [round(c.process_pct, 1) for c in trace],
        "load.idle.trace_machine_cpu_pct.all": [round(c.machine_pct, 1) for c in trace],
    }
