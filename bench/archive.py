"""Archive figures: how fast a primary copies its library to a fresh archive node compared
with the agent's first sync of the same photos, and how fast a full-speed scrub re-hashes the
store. `python -m bench.archive [--quick] [--runs N]` alone, or with the rest via `bench.run`.

One run, on the bench's large set (the sync figures' data; --quick: its smaller one):
1. the agent's first sync to the primary, timed as the sync figures time it (PhotonicPeer
   .first_sync: the server up, `agent --once` started with the photos in place -> it exits,
   every photo durable on the primary);
2. replication: the primary restarts with one backup node configured (a fresh archive node,
   already listening); timed from the primary's start to every version confirmed by the node
   (`photonic_replication_objects_confirmed_total` = the set's count), then lag and backlog
   are checked to be 0;
3. the same to a second fresh node with `encrypted: true` (objects sealed with the archive
   key, `photonic certs archive-key`);
4. `photonic scrub --now` over the primary's store with `storage.scrub_rate: 0` (no limit),
   the servers stopped: first as the replications left the page cache (warm), then, when this
   process may write /proc/sys/vm/drop_caches, after dropping it (cold).
Runs follow one another, so the agent and replication figures interleave A B A B.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from bench import datagen, trash
from bench.datagen import DataSet
from bench.peers.base import free_port, link_tree, port_open
from bench.peers.photonic import PhotonicPeer, photonic_argv, stop_process
from bench.procstat import ProcUsage, read_usage, run_measured, wait_until
from bench.report import PHOTONIC, FigureSpec, Target, TargetKind, build_rows, report_group_run

log = logging.getLogger("bench.archive")
BENCH_DIR = Path(__file__).resolve().parent
AGENT, PRIMARY_ID, ARCHIVE_ID = "bench-agent", "bench-primary", "bench-archive"
PLAIN, SEALED = "closet", "vault"
"""The backup nodes' names: a plain one and an encrypted one."""
REPLICATION_TIMEOUT_S = 3600.0
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
_MB, _GB = 1_000_000, 1_000_000_000


@dataclass(frozen=True)
class Transfer:
    """One timed copy of the set: wall seconds, and CPU seconds of each side by its role."""

    seconds: float
    payload_bytes: int
    cpu_s: dict[str, float]

    @property
    def mb_per_s(self) -> float:
        return self.payload_bytes / _MB / self.seconds

    def cpu_s_per_gb(self, side: str) -> float:
        return self.cpu_s[side] / (self.payload_bytes / _GB)


@dataclass(frozen=True)
class ScrubRun:
    """One `photonic scrub --now`: its own walk time and bytes, the command's CPU and wall."""

    seconds: float
    bytes_checked: int
    cpu_s: float
    wall_s: float

    @property
    def mb_per_s(self) -> float:
        return self.bytes_checked / _MB / self.seconds


@dataclass
class ArchiveFigure:
    agent: list[Transfer] = field(default_factory=list)
    replication: list[Transfer] = field(default_factory=list)
    encrypted: list[Transfer] = field(default_factory=list)
    scrub: dict[str, list[ScrubRun]] = field(default_factory=dict)
    """"warm" and "cold" (cold only where the page cache could be dropped)."""
    notes: list[str] = field(default_factory=list)


def archive_runs(*, quick: bool) -> int:
    return 1 if quick else 2


def archive_values(figure: ArchiveFigure) -> dict[str, list[float]]:
    """One value per run for each key of figure_specs (and the seconds, in the JSON only)."""
    values: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        values.setdefault(key, []).append(value)

    for t in figure.agent:
        add("archive.agent.mb_per_s", t.mb_per_s)
        add("archive.agent.s", t.seconds)
        for side in ("agent", "primary"):
            add(f"archive.agent.cpu_s_per_gb.{side}", t.cpu_s_per_gb(side))
    for name, runs in (("replication", figure.replication), ("encrypted", figure.encrypted)):
        for agent, t in zip(figure.agent, runs, strict=False):
            add(f"archive.{name}.mb_per_s", t.mb_per_s)
            add(f"archive.{name}.s", t.seconds)
            add(f"archive.{name}.ratio", t.mb_per_s / agent.mb_per_s)
            for side in ("primary", "archive"):
                add(f"archive.{name}.cpu_s_per_gb.{side}", t.cpu_s_per_gb(side))
    for cache, scrubs in figure.scrub.items():
        for s in scrubs:
            add(f"archive.scrub.{cache}.mb_per_s", s.mb_per_s)
            add(f"archive.scrub.{cache}.cpu_s_per_gb", s.cpu_s / (s.bytes_checked / _GB))
            add(f"archive.scrub.{cache}.wall_s", s.wall_s)
    return values


def figure_specs(files: int, payload_bytes: int) -> list[FigureSpec]:
    """The archive rows and the issue's goal (replication >= 0.9x the agent's first sync)."""
    what = f"large set ({files} photos, {payload_bytes / _GB:.2f} GB)"
    per_gb = "CPU s/GB"
    rows = [
        FigureSpec(f"{what}: agent first sync to the primary (agent start -> last photo "
                   "durable)", "MB/s", "archive.agent.mb_per_s"),
        FigureSpec(f"{what}: agent first sync, agent CPU (sending)", per_gb,
                   "archive.agent.cpu_s_per_gb.agent"),
        FigureSpec(f"{what}: agent first sync, primary CPU (receiving)", per_gb,
                   "archive.agent.cpu_s_per_gb.primary"),
    ]
    for name, node in (("replication", "a fresh archive node"),
                       ("encrypted", "a fresh encrypted archive node")):
        goal = Target(TargetKind.AT_LEAST, 0.9) if name == "replication" else None
        rows += [
            FigureSpec(f"{what}: primary -> {node} (primary start with the node -> every "
                       "version confirmed)", "MB/s", f"archive.{name}.mb_per_s"),
            FigureSpec(f"{what}: primary -> {node} / agent first sync, same run", "x",
                       f"archive.{name}.ratio", target=goal),
            FigureSpec(f"{what}: primary -> {node}, primary CPU (sending, start-up included)",
                       per_gb, f"archive.{name}.cpu_s_per_gb.primary"),
            FigureSpec(f"{what}: primary -> {node}, archive CPU (receiving)", per_gb,
                       f"archive.{name}.cpu_s_per_gb.archive"),
        ]
    for cache, how in (("warm", "warm page cache (just read by replication)"),
                       ("cold", "cold: page cache dropped first")):
        rows += [
            FigureSpec(f"{what}: scrub --now at scrub_rate 0 over the primary's store, {how}",
                       "MB/s", f"archive.scrub.{cache}.mb_per_s"),
            FigureSpec(f"{what}: scrub --now, {how}, CPU (whole command)", per_gb,
                       f"archive.scrub.{cache}.cpu_s_per_gb"),
        ]
    return rows


# --- the parties -----------------------------------------------------------------------------


def make_pki(certs: Path) -> None:
    """CA, the agent's certificate, a server-role certificate for the primary and for the
    archive nodes (the name each is known by), and the archive key."""
    argv = photonic_argv()
    for args in (("init",), ("issue", AGENT), ("issue", PRIMARY_ID, "--role", "server"),
                 ("issue", ARCHIVE_ID, "--role", "server"), ("archive-key",)):
        subprocess.run([*argv, "certs", *args, "--dir", str(certs)], check=True,
                       capture_output=True, timeout=120)


class ArchivePrimary(PhotonicPeer):
    """The sync figures' photonic peer, serving with the primary's server-role certificate and
    replicating to the backup nodes set in `nodes` (read at each start)."""

    def __init__(self, work_dir: Path, certs: Path) -> None:
        super().__init__(work_dir, agents=(AGENT,), certs=certs)
        self.nodes: list[dict[str, Any]] = []
        self.scrub_rate: int | None = None
        self.http_port = 0
        self.config_path = Path()

    def _server_config(self) -> Path:
        path = super()._server_config()
        config = yaml.safe_load(path.read_text())
        config["security"].update(cert_path=str(self.certs / f"{PRIMARY_ID}.crt"),
                                  key_path=str(self.certs / f"{PRIMARY_ID}.key"),
                                  archive_key_path=str(self.certs / "archive.key"))
        storage: dict[str, Any] = {"backup_nodes": self.nodes} if self.nodes else {}
        if self.scrub_rate is not None:
            storage["scrub_rate"] = self.scrub_rate
        if storage:
            config["storage"] = storage
        self.http_port = int(config["server"]["web_ui_port"])
        path.write_text(yaml.safe_dump(config))
        self.config_path = path
        return path

    def stop_server(self) -> None:
        if self._server is not None:
            stop_process(self._server)
            self._server = None

    def confirmed(self, node: str) -> tuple[float, float, float]:
        """(versions confirmed, lag s, bytes pending) of node from /metrics; confirmed is -1
        while the web listener is not up yet."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics",
                                        timeout=10) as reply:
                text = reply.read().decode()
        except (urllib.error.URLError, ConnectionError):
            return -1.0, 0.0, 0.0
        found: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels.get("node") == node:
                    found[sample.name] = sample.value
        return (found.get("photonic_replication_objects_confirmed_total", -1.0),
                found.get("photonic_replication_lag_seconds", 0.0),
                found.get("photonic_replication_bytes_pending", 0.0))


class ArchiveNode:
    """A `server.role: archive` daemon on loopback that gives the primary `replicate`."""

    def __init__(self, root: Path, certs: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True)
        config = {
            "server": {"role": "archive", "bind_address": self.endpoint,
                       "storage_path": str(root / "storage"), "web_ui_port": free_port(),
                       "web_ui_bind": "127.0.0.1"},
            "security": {"cert_path": str(certs / f"{ARCHIVE_ID}.crt"),
                         "key_path": str(certs / f"{ARCHIVE_ID}.key"),
                         "ca_path": str(certs / "ca.crt")},
            "agents": {PRIMARY_ID: {"scopes": ["replicate"]}},
            "default_scopes": [],
        }
        self.config_path = root / "server.yaml"
        self.config_path.write_text(yaml.safe_dump(config))

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with (self.root / "server.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [*photonic_argv(), "server", "--config", str(self.config_path)],
                stdout=out, stderr=out)
        wait_until(self._up, timeout_s=60, what="the archive node to listen")

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log_text = (self.root / "server.log").read_text(errors="replace")
            raise RuntimeError(f"archive node exited: {log_text[-3000:]}")
        return port_open(self.port)

    def usage(self) -> ProcUsage:
        assert self.proc is not None
        return read_usage(self.proc.pid)

    def close(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


# --- the measurements ------------------------------------------------------------------------


def replicate(primary: ArchivePrimary, node: ArchiveNode, settings: dict[str, Any],
              dataset: DataSet) -> Transfer:
    """Restarts the primary with node as its only backup node; timed from that start until
    the node confirmed every version; then checks the lag and backlog gauges read 0."""
    name = str(settings["name"])
    primary.stop_server()
    primary.nodes = [{**settings, "endpoint": node.endpoint}]
    before = node.usage()
    started = time.perf_counter()
    primary.start_server()
    wait_until(lambda: primary.confirmed(name)[0] >= dataset.count,
               timeout_s=REPLICATION_TIMEOUT_S, interval_s=0.1,
               what=f"{name} to confirm {dataset.count} versions")
    seconds = time.perf_counter() - started
    sender, receiver = primary.server_usage(), node.usage().minus(before)
    wait_until(lambda: primary.confirmed(name)[1:] == (0.0, 0.0), timeout_s=60,
               what=f"the lag and backlog of {name} to read 0")
    return Transfer(seconds, dataset.total_bytes,
                    {"primary": sender.cpu_s, "archive": receiver.cpu_s})


def scrub_now(primary: ArchivePrimary) -> ScrubRun:
    """`photonic scrub --now --json` at scrub_rate 0 (the primary stopped)."""
    primary.stop_server()
    primary.scrub_rate = 0
    config = primary._server_config()
    result = run_measured([*photonic_argv(), "scrub", "--now", "--json", "--config",
                           str(config)], timeout_s=REPLICATION_TIMEOUT_S)
    if result.returncode != 0:
        raise RuntimeError(f"photonic scrub --now exited {result.returncode}: "
                           f"{result.stderr[-3000:]}")
    report = json.loads(result.stdout)
    if report["damaged"]:
        raise RuntimeError(f"the scrub found damaged objects: {report['damaged']}")
    return ScrubRun(float(report["seconds"]), int(report["bytes_checked"]),
                    result.usage.cpu_s, result.wall_s)


def drop_page_cache() -> str:
    """Writes back dirty pages and drops the page cache; '' when done, else why not."""
    if os.geteuid() != 0:
        return "not root"
    try:
        os.sync()
        DROP_CACHES.write_text("3\n")
    except OSError as exc:
        return f"{DROP_CACHES}: {exc.strerror}"
    return ""


def one_run(run_dir: Path, dataset: DataSet, figure: ArchiveFigure, *, cold: bool) -> None:
    """A, B, encrypted B and the scrubs on one fresh primary and two fresh archive nodes."""
    certs = run_dir / "certs"
    make_pki(certs)
    source = run_dir / "source"
    link_tree(dataset.root, source)
    primary = ArchivePrimary(run_dir, certs)
    nodes = [ArchiveNode(run_dir / name, certs) for name in (PLAIN, SEALED)]
    try:
        log.info("archive: agent first sync of %d photos ...", dataset.count)
        first = primary.first_sync(source, dataset.count, dataset.total_bytes)
        assert first.sender is not None and first.receiver is not None
        figure.agent.append(Transfer(first.seconds, dataset.total_bytes,
                                     {"agent": first.sender.cpu_s,
                                      "primary": first.receiver.cpu_s}))
        for node in nodes:
            node.start()
        log.info("archive: replication to %s ...", PLAIN)
        figure.replication.append(replicate(primary, nodes[0], {"name": PLAIN}, dataset))
        log.info("archive: replication to %s (encrypted) ...", SEALED)
        figure.encrypted.append(
            replicate(primary, nodes[1], {"name": SEALED, "encrypted": True}, dataset))
        for node in nodes:
            node.close()
        log.info("archive: scrub --now ...")
        figure.scrub.setdefault("warm", []).append(scrub_now(primary))
        why_not = drop_page_cache() if cold else "not asked for"
        if why_not:
            figure.notes.append(f"archive: cold scrub not measured ({why_not})")
        else:
            figure.scrub.setdefault("cold", []).append(scrub_now(primary))
    finally:
        for node in nodes:
            node.close()
        primary.close()


def measure(work_dir: Path, dataset: DataSet, *, runs: int, cold: bool = True
            ) -> ArchiveFigure:
    """Every archive figure, `runs` times (see the module docstring); cold: drop the page
    cache for the cold scrub (it slows everything else on the machine for a moment)."""
    figure = ArchiveFigure()
    for run in range(runs):
        run_dir = work_dir / f"archive-{run}"
        if run_dir.exists():  # left by an interrupted run
            trash.discard(run_dir)
        run_dir.mkdir(parents=True)
        try:
            one_run(run_dir, dataset, figure, cold=cold)
        finally:
            trash.discard(run_dir)
    return figure


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.archive",
                                description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="the smaller large set, one run")
    p.add_argument("--runs", type=int, help="runs (default 2, quick 1)")
    p.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    started = time.perf_counter()
    dataset = datagen.ensure_set(datagen.standard_sets(quick=args.quick)["large"])
    runs = args.runs or archive_runs(quick=args.quick)
    figure = measure(datagen.DEFAULT_CACHE_DIR / "work-archive", dataset, runs=runs)
    samples = {(PHOTONIC, k): v for k, v in archive_values(figure).items()}
    rows = build_rows(figure_specs(dataset.count, dataset.total_bytes), samples)
    report_group_run("archive", args.quick, rows, samples, started, args.results_dir)
    for note in figure.notes:
        print(f"\n{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
