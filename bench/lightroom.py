"""Lightroom bridge figures: how soon a job leased on the server reaches the plugin through a
worker agent's bridge. `python -m bench.lightroom [--quick]` alone, or with the rest via
`bench.run`.

Real daemons over mutual TLS with the server's default lease settings: a `photonic server`, a
worker agent (`work.executors: [lightroom]`, the bridge on a free loopback port) that synced a
few small JPEGs, and an admin that submits one `lightroom` job at a time. The plugin is an
in-process client of the bridge protocol (docs/lightroom-bridge.md) that hand-shakes,
registers, subscribes to jobs and long-polls without pause (timeout 25 s), noting the wall
clock the moment each poll reply arrives. The lease is the job's `started_unix_ms` (GetJob
after the job ended), the server's wall clock: the same clock on this one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import logging
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench import datagen, trash
from bench.jobs import HOLDER, WATCH, JobsAdmin, JobsCluster
from bench.peers.base import free_port
from bench.peers.photonic import parse_log_ts, parse_logfmt
from bench.procstat import wait_until
from bench.report import (
    PHOTONIC,
    FigureSpec,
    Target,
    TargetKind,
    build_rows,
    percentile,
    report_group_run,
)
from photonic.jobs_model import JobRequest

log = logging.getLogger("bench.lightroom")
BENCH_DIR = Path(__file__).resolve().parent
PHOTOS = 10
WARMUP_JOBS = 3
"""Not counted: the first waits for the worker to advertise lightroom after the register."""
POLL_TIMEOUT_S = 25
FIRST_JOB_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 30.0
SECRET_HEADER = "X-Photonic-Bridge-Secret"
PARAMS = {"develop": {"preset": "Photonic Vivid"},
          "export": {"format": "JPEG", "long_edge": 256, "quality": 80, "color_space": "sRGB"}}


@dataclass(frozen=True)
class LightroomShape:
    jobs: int  # one at a time, each completed before the next is submitted


def lightroom_shape(*, quick: bool) -> LightroomShape:
    return LightroomShape(20 if quick else 100)


@dataclass
class LightroomFigure:
    lease_to_plugin_ms: list[float] = field(default_factory=list)
    submit_to_plugin_ms: list[float] = field(default_factory=list)
    lease_to_bridge_ms: list[float] = field(default_factory=list)
    """The lease -> the agent's bridge queues job_assigned (its log line, ms precision)."""
    bridge_to_plugin_ms: list[float] = field(default_factory=list)
    """The bridge queues job_assigned -> the poll reply carrying it arrives."""
    received: list[tuple[str, int, float]] = field(default_factory=list)
    """Per counted job: its id, lease (Unix ms) and the poll reply's arrival (Unix s)."""


def job_latencies(submitted_s: float, started_unix_ms: int, arrived_s: float
                  ) -> tuple[float, float]:
    """(lease -> plugin, submit -> plugin) in ms of one job: the client's wall clock at
    submit and at the poll reply, the server's lease in Unix ms."""
    if started_unix_ms <= 0:
        raise ValueError("the job was never leased")
    arrived_ms = arrived_s * 1000
    return arrived_ms - started_unix_ms, arrived_ms - submitted_s * 1000


_QUEUED = re.compile(r"lightroom client=\S+ job=(\S+) attempt=\d+ assigned")


def bridge_queued_times(agent_log: str) -> dict[str, float]:
    """{job id: Unix time} at which the agent's bridge queued each job's last job_assigned,
    from the agent's log (`msg="lightroom client=... job=... attempt=N assigned"`)."""
    found: dict[str, float] = {}
    for line in agent_log.splitlines():
        fields = parse_logfmt(line)
        match = _QUEUED.fullmatch(fields.get("msg", ""))
        if match:
            found[match.group(1)] = parse_log_ts(fields.get("ts", ""))
    return found


def split_at_bridge(figure: LightroomFigure, queued: Mapping[str, float]) -> None:
    """Splits each received job's lease -> plugin at the moment the bridge queued it."""
    for job_id, started_ms, arrived_s in figure.received:
        if job_id in queued:
            figure.lease_to_bridge_ms.append(queued[job_id] * 1000 - started_ms)
            figure.bridge_to_plugin_ms.append((arrived_s - queued[job_id]) * 1000)


def lightroom_values(figure: LightroomFigure) -> dict[str, list[float]]:
    """The figure as bench samples (one list per key of figure_specs)."""
    values: dict[str, list[float]] = {}
    for name, samples, p95 in (("lease", figure.lease_to_plugin_ms, True),
                               ("submit", figure.submit_to_plugin_ms, True),
                               ("lease_to_bridge", figure.lease_to_bridge_ms, False),
                               ("bridge_to_plugin", figure.bridge_to_plugin_ms, False)):
        if samples:
            values[f"lightroom.{name}.p50"] = [percentile(samples, 50)]
            if p95:
                values[f"lightroom.{name}.p95"] = [percentile(samples, 95)]
    return values


def raw_samples(figure: LightroomFigure) -> dict[str, list[float]]:
    """Every job's latencies, kept in the results JSON beside the percentiles."""
    return {"lightroom.lease.all": figure.lease_to_plugin_ms,
            "lightroom.submit.all": figure.submit_to_plugin_ms,
            "lightroom.lease_to_bridge.all": figure.lease_to_bridge_ms,
            "lightroom.bridge_to_plugin.all": figure.bridge_to_plugin_ms}


def figure_specs(shape: LightroomShape) -> list[FigureSpec]:
    """The bridge rows and the issue's goal (a long-poll, not a poll interval)."""
    what = f"{shape.jobs} lightroom jobs, one at a time, long-polling plugin"
    return [
        FigureSpec(f"{what}: lease on the server -> plugin receives job_assigned, p50", "ms",
                   "lightroom.lease.p50", target=Target(TargetKind.AT_MOST, 50)),
        FigureSpec(f"{what}: lease on the server -> plugin receives job_assigned, p95", "ms",
                   "lightroom.lease.p95"),
        FigureSpec(f"{what}: submit -> plugin receives job_assigned, p50", "ms",
                   "lightroom.submit.p50"),
        FigureSpec(f"{what}: submit -> plugin receives job_assigned, p95", "ms",
                   "lightroom.submit.p95"),
        FigureSpec(f"{what}: of which lease -> the agent's bridge queues it (agent log), p50",
                   "ms", "lightroom.lease_to_bridge.p50"),
        FigureSpec(f"{what}: of which bridge queues it -> plugin receives it, p50", "ms",
                   "lightroom.bridge_to_plugin.p50"),
    ]


# --- the plugin ------------------------------------------------------------------------------


class PollingPlugin:
    """The plugin's side of the bridge, minimal: handshake, register, subscribe to jobs, one
    long-poll always outstanding; each job_assigned is queued with the wall clock (Unix s) at
    which its poll reply arrived."""

    def __init__(self, base_url: str, secret: str) -> None:
        self._url = base_url.rstrip("/")
        self._headers = {SECRET_HEADER: secret}
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90))
        self._client_id = ""
        self._poller: asyncio.Task[None] | None = None
        self.assigned: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()

    async def start(self) -> None:
        reply = await self._post("/bridge/handshake",
                                 {"client_type": "lightroom", "protocol_version": 1})
        self._client_id = str(reply["client_id"])
        await self.send({"type": "register", "lightroom_version": "13.2",
                         "catalog": "Bench Catalog", "plugin_version": "1.0"})
        await self.send({"type": "subscribe", "channels": ["jobs"]})
        self._poller = asyncio.create_task(self._poll_forever())

    async def _post(self, path: str, body: Mapping[str, object]) -> dict[str, Any]:
        async with self._session.post(self._url + path, json=body,
                                      headers=self._headers) as response:
            reply: dict[str, Any] = await response.json(content_type=None)
            if response.status >= 400:
                raise RuntimeError(f"bridge {path}: {response.status} {reply.get('error')}")
            return reply

    async def send(self, message: Mapping[str, object]) -> None:
        await self._post("/bridge/send", {"client_id": self._client_id,
                                          "message": dict(message)})

    async def _poll_forever(self) -> None:
        params = {"client_id": self._client_id, "timeout": str(POLL_TIMEOUT_S)}
        while True:
            async with self._session.get(self._url + "/bridge/poll", params=params,
                                         headers=self._headers) as response:
                reply = await response.json(content_type=None)
                arrived = time.time()
            if response.status >= 400:
                raise RuntimeError(f"bridge poll: {response.status} {reply.get('error')}")
            for message in reply["messages"]:
                if message.get("type") == "job_assigned":
                    self.assigned.put_nowait((arrived, message))

    async def next_assignment(self, timeout_s: float) -> tuple[float, dict[str, Any]]:
        get = asyncio.ensure_future(self.assigned.get())
        waits: set[asyncio.Future[Any]] = {get}
        if self._poller is not None:
            waits.add(self._poller)
        done, _ = await asyncio.wait(waits, timeout=timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if get not in done:
            get.cancel()
            if self._poller is not None and self._poller.done():
                self._poller.result()  # the poll loop's error
            raise TimeoutError(f"no job_assigned within {timeout_s:g} s")
        return get.result()

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poller
        with contextlib.suppress(Exception):
            await self._post("/bridge/disconnect", {"client_id": self._client_id})
        await self._session.close()


# --- the run ---------------------------------------------------------------------------------


def small_jpeg(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (seed * 37 % 256, seed * 91 % 256, 120)).save(out, "JPEG",
                                                                          quality=85)
    return out.getvalue()


def start_lightroom_worker(cluster: JobsCluster, bridge_port: int) -> None:
    """The holder as a worker agent whose only executor is lightroom (no models loaded)."""
    agent_dir = cluster.dir / HOLDER
    config: dict[str, Any] = {
        "agent": {"id": HOLDER, "server_endpoints": [cluster.endpoint],
                  "buffer_path": str(agent_dir / "buffer"),
                  "watch": [{"path": str(cluster.watch(HOLDER)), "name": WATCH,
                             "mode": "reference"}]},
        "security": {"cert_path": str(cluster.certs / f"{HOLDER}.crt"),
                     "key_path": str(cluster.certs / f"{HOLDER}.key"),
                     "ca_path": str(cluster.certs / "ca.crt")},
        "work": {"enabled": True, "executors": ["lightroom"],
                 "lightroom": {"port": bridge_port}},
    }
    path = agent_dir / "lightroom.yaml"
    path.write_text(yaml.safe_dump(config))
    with (cluster.dir / f"{HOLDER}.log").open("ab") as out:
        cluster.agents[HOLDER] = subprocess.Popen(
            [*cluster.argv, "agent", "--config", str(path)], stdout=out, stderr=out)


async def drive(url: str, secret: str, admin: JobsAdmin, shas: Sequence[str], jobs: int
                ) -> LightroomFigure:
    """Submits WARMUP_JOBS + jobs lightroom jobs one at a time; the plugin completes each
    with a small real JPEG before the next is submitted."""
    plugin = PollingPlugin(url, secret)
    figure = LightroomFigure()
    export = small_jpeg(0, (256, 192))
    try:
        await plugin.start()
        for i in range(WARMUP_JOBS + jobs):
            request = JobRequest("lightroom", input_sha256=(shas[i % len(shas)],),
                                 params=PARAMS)
            submitted = time.time()
            job = await asyncio.to_thread(admin.submit, request)
            arrived, message = await plugin.next_assignment(
                FIRST_JOB_TIMEOUT_S if i == 0 else JOB_TIMEOUT_S)
            if message["job_id"] != job.job_id:
                raise RuntimeError(f"the plugin got {message['job_id']}, not {job.job_id}")
            output = Path(str(message["export_dir"])) / f"export-{i}.jpg"
            output.write_bytes(export)
            await plugin.send({"type": "job_completed", "job_id": job.job_id,
                               "attempt": message["attempt"], "outputs": [str(output)]})
            ended = await asyncio.to_thread(admin.wait_ended, job.job_id, JOB_TIMEOUT_S, 0.005)
            if ended.state.value != "COMPLETED":
                raise RuntimeError(f"job {job.job_id} ended {ended.state.value}: {ended.error}")
            if i >= WARMUP_JOBS:
                lease, submit = job_latencies(submitted, ended.started_unix_ms, arrived)
                figure.lease_to_plugin_ms.append(lease)
                figure.submit_to_plugin_ms.append(submit)
                figure.received.append((job.job_id, ended.started_unix_ms, arrived))
    finally:
        await plugin.close()
    return figure


def measure(work_dir: Path, *, quick: bool) -> LightroomFigure:
    """The bridge figure on one server with default settings (see the module docstring)."""
    from photonic.lightroom.secret import load_or_make_secret

    shape = lightroom_shape(quick=quick)
    run_dir = work_dir / "lightroom"
    run_dir.mkdir(parents=True, exist_ok=True)
    cluster = JobsCluster(run_dir, run_dir / "models")  # lightroom loads no models
    try:
        watch = cluster.watch(HOLDER)
        watch.mkdir(parents=True)
        photos = [small_jpeg(i + 1) for i in range(PHOTOS)]
        for i, data in enumerate(photos):
            (watch / f"IMG_{i:04d}.jpg").write_bytes(data)
        cluster.start_server()
        cluster.sync_once(HOLDER)
        port = free_port()
        start_lightroom_worker(cluster, port)
        cluster.wait_worker_ready(HOLDER)
        buffer = cluster.dir / HOLDER / "buffer"
        wait_until(lambda: (buffer / "lightroom.secret").exists(), timeout_s=60,
                   what="the bridge's secret")
        secret = load_or_make_secret(buffer)
        admin = JobsAdmin(cluster.endpoint, cluster.certs)
        try:
            shas = [hashlib.sha256(data).hexdigest() for data in photos]
            log.info("lightroom: %d jobs through the bridge ...", shape.jobs)
            figure = asyncio.run(drive(f"http://127.0.0.1:{port}", secret, admin, shas,
                                       shape.jobs))
        finally:
            admin.close()
        agent_log = (cluster.dir / f"{HOLDER}.log").read_text(errors="replace")
        split_at_bridge(figure, bridge_queued_times(agent_log))
        return figure
    finally:
        cluster.close()
        trash.discard(run_dir)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.lightroom",
                                description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer jobs")
    p.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    started = time.perf_counter()
    figure = measure(datagen.DEFAULT_CACHE_DIR / "work-lightroom", quick=args.quick)
    samples = {(PHOTONIC, k): v for k, v in lightroom_values(figure).items()}
    samples.update({(PHOTONIC, k): v for k, v in raw_samples(figure).items()})
    rows = build_rows(figure_specs(lightroom_shape(quick=args.quick)), samples)
    report_group_run("lightroom", args.quick, rows, samples, started, args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
