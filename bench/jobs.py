"""Jobs figures: how soon a submitted job reaches a worker, how much of a batch's time goes to
dispatch rather than to the executor, and how long a killed worker's job waits before it runs
elsewhere. `python -m bench.jobs [--quick]` alone, or with the rest via `bench.run`.

Everything runs the real daemons over mutual TLS with the server's default lease settings: a
`photonic server`, worker agents (`work.enabled`, the real MediaPipe models) and an admin. The
submit -> Assignment latency is measured with an in-process worker on the Work stream, which
timestamps the Assignment the moment it arrives; the real agent's submit -> PROCESSING is read
from the server's `event=job_state` log lines (millisecond timestamps, same clock).
"""

from __future__ import annotations

import argparse
import io
import itertools
import logging
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml

from bench import datagen, trash
from bench.peers.base import free_port, port_open
from bench.peers.photonic import parse_log_ts, parse_logfmt, photonic_argv, stop_process
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
from photonic import jobs_wire
from photonic.jobs_model import (
    Assignment,
    Job,
    JobFilter,
    JobRequest,
    ServerOrder,
    WorkerHello,
    WorkerReport,
    WorkFailed,
)
from photonic.tls import channel_credentials
from photonic.v1 import jobs_pb2, jobs_pb2_grpc

log = logging.getLogger("bench.jobs")
BENCH_DIR = Path(__file__).resolve().parent
ADMIN, HOLDER, SPARE, SCRIPTED = "bench-admin", "bench-worker", "bench-worker-2", "bench-scripted"
WATCH = "photos"
CALL_TIMEOUT_S = 30.0
JOB_TIMEOUT_S = 600.0
WARMUP_JOBS = 5
ASTRONAUT_FACE = (177, 82, 95, 95)
"""x, y, width, height of the face in skimage's astronaut (512 x 512)."""
CAMERA_SIDE_PX = 3000
"""The camera-size batch: each portrait scaled up to 9 MP, as a phone or camera photo."""
BIG_SIZE = (6000, 4000)
"""The recovery job's photo: bgremove takes seconds on 24 MP, so it is mid-run when killed."""


@dataclass(frozen=True)
class JobsShape:
    single_jobs: int  # submit -> Assignment, in-process worker
    agent_jobs: int  # submit -> PROCESSING, real worker agent
    batch_photos: int  # the facecrop batch of small portraits (300..512 px)
    camera_photos: int  # the facecrop batch of camera-size portraits (CAMERA_SIDE_PX square)


def jobs_shape(*, quick: bool) -> JobsShape:
    return JobsShape(30, 10, 50, 5) if quick else JobsShape(100, 30, 200, 20)


@dataclass
class BatchFigure:
    photos: int = 0
    completed: int = 0
    wall_s: float = 0.0
    executor_s: float = 0.0
    """The sum of the children's recipe durations (each attempt: input, executor)."""
    outside_attempt_ms: list[float] = field(default_factory=list)
    """Per child: lease -> COMPLETED minus its recipe's duration (output upload, Done)."""
    between_jobs_ms: list[float] = field(default_factory=list)
    """Per child but the last: its COMPLETED -> the next child's lease."""


@dataclass
class JobsFigure:
    dispatch_ms: list[float] = field(default_factory=list)
    agent_processing_ms: list[float] = field(default_factory=list)
    batches: dict[str, BatchFigure] = field(default_factory=dict)
    """"batch" (small portraits) and "camera" (camera-size ones)."""
    recovery_s: float | None = None


def overhead_share(wall_s: float, executor_s: float) -> float:
    """The part of a batch's wall time not spent in its jobs' attempts (one worker, one slot):
    1 - sum of the recipes' durations / wall time, never below 0."""
    if wall_s <= 0:
        raise ValueError("a batch takes some time")
    return max(0.0, 1.0 - executor_s / wall_s)


def state_times(log_text: str, state: str, worker: str = "") -> dict[str, float]:
    """{job id: Unix time} of the first `event=job_state` line putting each job in state
    (by worker, when given), from the server's log."""
    found: dict[str, float] = {}
    for line in log_text.splitlines():
        if "event=job_state" not in line:
            continue
        fields = parse_logfmt(line)
        if fields.get("state") != state or (worker and fields.get("worker") != worker):
            continue
        job = fields.get("job", "")
        if job and job not in found:
            found[job] = parse_log_ts(fields.get("ts", ""))
    return found


def jobs_values(figure: JobsFigure) -> dict[str, list[float]]:
    """The figure as bench samples (one list per key of figure_specs)."""
    values: dict[str, list[float]] = {}
    if figure.dispatch_ms:
        values["jobs.dispatch.p50"] = [percentile(figure.dispatch_ms, 50)]
        values["jobs.dispatch.p95"] = [percentile(figure.dispatch_ms, 95)]
    if figure.agent_processing_ms:
        values["jobs.agent_start.p50"] = [percentile(figure.agent_processing_ms, 50)]
        values["jobs.agent_start.p95"] = [percentile(figure.agent_processing_ms, 95)]
    for name, batch in figure.batches.items():
        if batch.wall_s <= 0:
            continue
        values[f"jobs.{name}.jobs_per_s"] = [batch.completed / batch.wall_s]
        values[f"jobs.{name}.s"] = [batch.wall_s]
        values[f"jobs.{name}.overhead_pct"] = [
            100 * overhead_share(batch.wall_s, batch.executor_s)]
        values[f"jobs.{name}.failed"] = [float(batch.photos - batch.completed)]
        if batch.outside_attempt_ms:
            values[f"jobs.{name}.outside_attempt_ms"] = [
                percentile(batch.outside_attempt_ms, 50)]
        if batch.between_jobs_ms:
            values[f"jobs.{name}.between_jobs_ms"] = [percentile(batch.between_jobs_ms, 50)]
    if figure.recovery_s is not None:
        values["jobs.recovery.s"] = [figure.recovery_s]
    return values


def figure_specs(shape: JobsShape) -> list[FigureSpec]:
    """The jobs rows and the issue's goals."""
    single = f"{shape.single_jobs} single jobs, one idle worker"
    rows = [
        FigureSpec(f"{single}: submit -> Assignment, p50", "ms", "jobs.dispatch.p50",
                   target=Target(TargetKind.AT_MOST, 20)),
        FigureSpec(f"{single}: submit -> Assignment, p95", "ms", "jobs.dispatch.p95",
                   target=Target(TargetKind.AT_MOST, 100)),
        FigureSpec(f"{shape.agent_jobs} single jobs, real worker agent: submit -> PROCESSING,"
                   " p50", "ms", "jobs.agent_start.p50"),
        FigureSpec(f"{shape.agent_jobs} single jobs, real worker agent: submit -> PROCESSING,"
                   " p95", "ms", "jobs.agent_start.p95"),
    ]
    for name, what in (("batch", f"{shape.batch_photos}-photo facecrop batch (300-512 px)"),
                       ("camera", f"{shape.camera_photos}-photo facecrop batch "
                                  f"({CAMERA_SIDE_PX}x{CAMERA_SIDE_PX} px)")):
        rows += [
            FigureSpec(f"{what}: wall time", "s", f"jobs.{name}.s"),
            FigureSpec(f"{what}: throughput", "jobs/s", f"jobs.{name}.jobs_per_s"),
            FigureSpec(f"{what}: dispatch overhead (wall time not in attempts)", "%",
                       f"jobs.{name}.overhead_pct", target=Target(TargetKind.AT_MOST, 5)),
            FigureSpec(f"{what}: per job, leased but not in the attempt (upload, Done), p50",
                       "ms", f"jobs.{name}.outside_attempt_ms"),
            FigureSpec(f"{what}: per job, COMPLETED -> next lease, p50", "ms",
                       f"jobs.{name}.between_jobs_ms"),
            FigureSpec(f"{what}: jobs failed", "jobs", f"jobs.{name}.failed",
                       target=Target(TargetKind.AT_MOST, 0)),
        ]
    return [
        *rows,
        FigureSpec("worker SIGKILLed mid-job: until its job runs elsewhere (default lease)", "s",
                   "jobs.recovery.s", target=Target(TargetKind.AT_MOST, 20)),
    ]


# --- photos ----------------------------------------------------------------------------------


def portrait_variants(count: int, seed: int) -> Iterator[bytes]:
    """`count` distinct JPEGs of the astronaut, each a square crop (300..512 px) that keeps
    her face whole, half of them mirrored: a batch in which every photo has a face."""
    from PIL import Image, ImageOps
    from skimage import data

    source = Image.fromarray(data.astronaut())  # type: ignore[no-untyped-call]
    rng = random.Random(seed)
    fx, fy, fw, fh = ASTRONAUT_FACE
    for _ in range(count):
        side = rng.randint(300, 512)
        x = rng.randint(max(0, fx + fw - side), min(fx, 512 - side))
        y = rng.randint(max(0, fy + fh - side), min(fy, 512 - side))
        crop = source.crop((x, y, x + side, y + side))
        if rng.random() < 0.5:
            crop = ImageOps.mirror(crop)
        out = io.BytesIO()
        crop.save(out, "JPEG", quality=rng.randint(85, 95))
        yield out.getvalue()


def scaled_up(jpeg: bytes, side_px: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    with Image.open(io.BytesIO(jpeg)) as image:
        image.resize((side_px, side_px)).save(out, "JPEG", quality=90)
    return out.getvalue()


def big_portrait() -> bytes:
    from PIL import Image
    from skimage import data

    out = io.BytesIO()
    Image.fromarray(data.astronaut()).resize(BIG_SIZE).save(  # type: ignore[no-untyped-call]
        out, "JPEG", quality=85)
    return out.getvalue()


# --- the parties -----------------------------------------------------------------------------


class JobsAdmin:
    """Submits and reads jobs with the admin certificate (synchronous gRPC)."""

    def __init__(self, endpoint: str, certs: Path) -> None:
        self.channel = grpc.secure_channel(endpoint, _credentials(certs, ADMIN))
        self.stub = jobs_pb2_grpc.PhotonicJobsStub(self.channel)  # type: ignore[no-untyped-call]

    def submit(self, request: JobRequest) -> Job:
        return jobs_wire.job_from_wire(self.stub.SubmitJob(jobs_wire.request_to_wire(request),
                                                           timeout=CALL_TIMEOUT_S))

    def get(self, job_id: str) -> Job:
        return jobs_wire.job_from_wire(self.stub.GetJob(jobs_pb2.GetJobRequest(job_id=job_id),
                                                        timeout=CALL_TIMEOUT_S))

    def children(self, parent_id: str) -> list[Job]:
        reply = self.stub.ListJobs(jobs_wire.filter_to_wire(
            JobFilter(parent_id=parent_id, limit=100_000)), timeout=CALL_TIMEOUT_S)
        return [jobs_wire.job_from_wire(j) for j in reply.jobs]

    def wait_ended(self, job_id: str, timeout_s: float = JOB_TIMEOUT_S,
                   interval_s: float = 0.02) -> Job:
        ended: list[Job] = []

        def done() -> bool:
            job = self.get(job_id)
            ended[:] = [job]
            return job.state.terminal

        wait_until(done, timeout_s=timeout_s, interval_s=interval_s, what=f"job {job_id}")
        return ended[0]

    def close(self) -> None:
        self.channel.close()


class StreamWorker:
    """An in-process worker on one Work stream: every order is queued with the perf_counter
    of its arrival, read by a thread that does nothing else."""

    def __init__(self, endpoint: str, certs: Path, capabilities: Sequence[str]) -> None:
        self.channel = grpc.secure_channel(endpoint, _credentials(certs, SCRIPTED))
        stub = jobs_pb2_grpc.PhotonicJobsStub(self.channel)  # type: ignore[no-untyped-call]
        self._out: queue.Queue[jobs_pb2.WorkerMessage | None] = queue.Queue()
        self.orders: queue.Queue[tuple[float, ServerOrder]] = queue.Queue()
        self.send(WorkerHello(tuple(capabilities), 1, (), "bench"))
        self._call = stub.Work(self._requests())
        threading.Thread(target=self._read, daemon=True).start()

    def _requests(self) -> Iterator[jobs_pb2.WorkerMessage]:
        while (message := self._out.get()) is not None:
            yield message

    def _read(self) -> None:
        try:
            for message in self._call:
                arrived = time.perf_counter()
                order = jobs_wire.order_from_wire(message)
                if order is not None:
                    self.orders.put((arrived, order))
        except grpc.RpcError as exc:
            log.debug("bench worker stream ended: %s", exc)

    def send(self, report: WorkerReport) -> None:
        self._out.put(jobs_wire.report_to_wire(report))

    def next_assignment(self, timeout_s: float = CALL_TIMEOUT_S) -> tuple[float, Assignment]:
        while True:
            arrived, order = self.orders.get(timeout=timeout_s)
            if isinstance(order, Assignment):
                return arrived, order

    def close(self) -> None:
        self._out.put(None)
        self._call.cancel()
        self.channel.close()


def _credentials(certs: Path, agent: str) -> grpc.ChannelCredentials:
    return channel_credentials(certs / f"{agent}.crt", certs / f"{agent}.key", certs / "ca.crt")


# --- the cluster -----------------------------------------------------------------------------


class JobsCluster:
    """A server and worker agents on loopback, with their own PKI and storage in run_dir."""

    def __init__(self, run_dir: Path, models_dir: Path) -> None:
        self.dir = run_dir
        self.models_dir = models_dir
        self.certs = run_dir / "certs"
        self.port = free_port()
        self.argv = photonic_argv()
        self.server: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self._cli("certs", "init", "--dir", str(self.certs))
        for agent in (ADMIN, HOLDER, SPARE, SCRIPTED):
            self._cli("certs", "issue", agent, "--dir", str(self.certs))

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def watch(self, agent: str) -> Path:
        return self.dir / agent / WATCH

    def server_log(self) -> str:
        return (self.dir / "server.log").read_text(errors="replace")

    def _cli(self, *args: str) -> None:
        subprocess.run([*self.argv, *args], check=True, capture_output=True, timeout=300)

    def start_server(self) -> None:
        """Default jobs settings (the lease is what the recovery figure measures)."""
        workers = {a: {"scopes": ["sync", "work"]} for a in (HOLDER, SPARE, SCRIPTED)}
        config = {
            "server": {"bind_address": self.endpoint, "storage_path": str(self.dir / "storage")},
            "security": self._security("server"),
            "agents": {ADMIN: {"scopes": ["admin"]}, **workers},
            "default_scopes": ["sync"],
        }
        path = self.dir / "server.yaml"
        path.write_text(yaml.safe_dump(config))
        with (self.dir / "server.log").open("ab") as out:
            self.server = subprocess.Popen([*self.argv, "server", "--config", str(path)],
                                           stdout=out, stderr=out)
        wait_until(lambda: port_open(self.port), timeout_s=60, what="photonic server to listen")

    def _security(self, who: str) -> dict[str, str]:
        return {"cert_path": str(self.certs / f"{who}.crt"),
                "key_path": str(self.certs / f"{who}.key"), "ca_path": str(self.certs / "ca.crt")}

    def _agent_config(self, agent: str, *, work: bool, executors: Sequence[str] = ()) -> Path:
        watch = self.watch(agent)
        watch.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "agent": {"id": agent, "server_endpoints": [self.endpoint],
                      "buffer_path": str(self.dir / agent / "buffer"),
                      "watch": [{"path": str(watch), "name": WATCH, "mode": "reference"}]},
            "security": self._security(agent),
        }
        if work:
            config["work"] = {"enabled": True, "models_dir": str(self.models_dir)}
            if executors:
                config["work"]["executors"] = list(executors)
        path = self.dir / agent / ("work.yaml" if work else "sync.yaml")
        path.write_text(yaml.safe_dump(config))
        return path

    def sync_once(self, agent: str) -> None:
        """`photonic agent --once` (work off): every photo of the agent's watch is stored."""
        path = self._agent_config(agent, work=False)
        done = subprocess.run([*self.argv, "agent", "--config", str(path), "--once"],
                              capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"agent --once exited {done.returncode}: {done.stderr[-2000:]}")

    def start_worker(self, agent: str, executors: Sequence[str] = ()) -> None:
        path = self._agent_config(agent, work=True, executors=executors)
        with (self.dir / f"{agent}.log").open("ab") as out:
            self.agents[agent] = subprocess.Popen(
                [*self.argv, "agent", "--config", str(path)], stdout=out, stderr=out)

    def wait_worker_ready(self, agent: str) -> None:
        """Until the server logs the agent's Work stream as open."""
        def connected() -> bool:
            proc = self.agents[agent]
            if proc.poll() is not None:
                log_text = (self.dir / f"{agent}.log").read_text(errors="replace")
                raise RuntimeError(f"{agent} exited {proc.returncode}: {log_text[-2000:]}")
            return any("event=worker_connected" in line and f"worker={agent}" in line
                       for line in self.server_log().splitlines())

        wait_until(connected, timeout_s=120, interval_s=0.1, what=f"{agent}'s Work stream")

    def kill(self, agent: str) -> None:
        proc = self.agents.pop(agent)
        proc.kill()
        proc.wait(10)

    def close(self) -> None:
        for proc in self.agents.values():
            stop_process(proc)
        if self.server is not None:
            stop_process(self.server)


# --- the measurements ------------------------------------------------------------------------


def scripted_dispatch(cluster: JobsCluster, admin: JobsAdmin, sha: str, count: int
                      ) -> list[float]:
    """submit -> Assignment (ms) of `count` jobs, one at a time, on an otherwise idle worker
    that fails each at once (not retryable) to be free for the next."""
    worker = StreamWorker(cluster.endpoint, cluster.certs, ["bgremove"])
    try:
        latencies = []
        for i in range(WARMUP_JOBS + count):
            started = time.perf_counter()
            admin.submit(JobRequest("bgremove", input_sha256=(sha,)))
            arrived, order = worker.next_assignment()
            if i >= WARMUP_JOBS:
                latencies.append((arrived - started) * 1000)
            worker.send(WorkFailed(order.job.job_id, order.job.attempts, "bench", False))
            admin.wait_ended(order.job.job_id, interval_s=0.005)
        return latencies
    finally:
        worker.close()


def agent_start(cluster: JobsCluster, admin: JobsAdmin, paths: Sequence[str]) -> list[float]:
    """submit -> PROCESSING (ms) of one bgremove job per path, one at a time, on the real
    worker agent: the client's clock at submit, the server's log at PROCESSING."""
    submitted: dict[str, float] = {}
    for path in paths:
        at = time.time()
        job = admin.submit(JobRequest("bgremove", library_paths=(path,)))
        submitted[job.job_id] = at
        ended = admin.wait_ended(job.job_id)
        if ended.state.value != "COMPLETED":
            raise RuntimeError(f"job {job.job_id} ended {ended.state.value}: {ended.error}")
    processing = state_times(cluster.server_log(), "PROCESSING")
    return [(processing[j] - at) * 1000 for j, at in submitted.items()][WARMUP_JOBS // 2:]


def facecrop_batch(admin: JobsAdmin, folder: str) -> BatchFigure:
    """Submits facecrop over a library folder and reads, once it ended, its wall time (the
    parent's created -> finished) and its children's times."""
    parent = admin.submit(JobRequest("facecrop", library_folder=folder))
    parent = admin.wait_ended(parent.job_id, interval_s=0.1)
    children = admin.children(parent.job_id)
    durations = {c.job_id: float(str(c.outputs[0].recipe.get("duration_ms", 0)))
                 for c in children if c.outputs}
    ran = sorted((c for c in children if c.job_id in durations),
                 key=lambda c: c.started_unix_ms)
    return BatchFigure(
        photos=len(children),
        completed=sum(c.state.value == "COMPLETED" for c in children),
        wall_s=(parent.finished_unix_ms - parent.created_unix_ms) / 1000,
        executor_s=sum(durations.values()) / 1000,
        outside_attempt_ms=[c.finished_unix_ms - c.started_unix_ms - durations[c.job_id]
                            for c in ran],
        between_jobs_ms=[float(b.started_unix_ms - a.finished_unix_ms)
                         for a, b in itertools.pairwise(ran)])


def recovery(cluster: JobsCluster, admin: JobsAdmin, path: str) -> float:
    """Seconds from SIGKILL of the worker running a job to the job's lease to the other."""
    job = admin.submit(JobRequest("bgremove", library_paths=(path,)))

    def processing() -> bool:
        current = admin.get(job.job_id)
        if current.state.terminal:
            raise RuntimeError(f"the recovery job ended {current.state.value} before the kill")
        return current.state.value == "PROCESSING"

    wait_until(processing, timeout_s=JOB_TIMEOUT_S, what="the recovery job to run")
    running = admin.get(job.job_id)
    if running.worker_id != HOLDER:
        raise RuntimeError(f"the recovery job went to {running.worker_id}, not the holder")
    killed = time.time()
    cluster.kill(HOLDER)
    wait_until(lambda: job.job_id in state_times(cluster.server_log(), "READING", SPARE),
               timeout_s=120, interval_s=0.1, what="the job to be leased elsewhere")
    elsewhere = state_times(cluster.server_log(), "READING", SPARE)[job.job_id]
    admin.wait_ended(job.job_id)
    return elsewhere - killed


def measure(work_dir: Path, *, quick: bool, seed: int = datagen.DEFAULT_SEED) -> JobsFigure:
    """Every jobs figure, on one server with default settings (see the module docstring)."""
    from photonic.agent.executors.models import fetch_models

    shape = jobs_shape(quick=quick)
    models_dir = datagen.DEFAULT_CACHE_DIR / "models"
    fetch_models(models_dir)  # a no-op once they are there
    run_dir = work_dir / "jobs"
    run_dir.mkdir(parents=True, exist_ok=True)
    cluster = JobsCluster(run_dir, models_dir)
    figure = JobsFigure()
    try:
        batch = cluster.watch(HOLDER) / "batch"
        batch.mkdir(parents=True)
        for i, data in enumerate(portrait_variants(shape.batch_photos, seed)):
            (batch / f"portrait_{i:04d}.jpg").write_bytes(data)
        camera = cluster.watch(HOLDER) / "camera"
        camera.mkdir()
        for i, data in enumerate(portrait_variants(shape.camera_photos, seed + 1)):
            (camera / f"portrait_{i:04d}.jpg").write_bytes(scaled_up(data, CAMERA_SIDE_PX))
        (cluster.watch(HOLDER) / "big.jpg").write_bytes(big_portrait())
        cluster.start_server()
        cluster.sync_once(HOLDER)
        admin = JobsAdmin(cluster.endpoint, cluster.certs)
        try:
            first = sorted(batch.iterdir())[0]
            sha = _sha256(first)
            log.info("jobs: %d jobs on an in-process worker ...", shape.single_jobs)
            figure.dispatch_ms = scripted_dispatch(cluster, admin, sha, shape.single_jobs)
            cluster.start_worker(HOLDER)
            cluster.wait_worker_ready(HOLDER)
            singles = [f"{HOLDER}/{WATCH}/batch/{p.name}"
                       for p in sorted(batch.iterdir())[:shape.agent_jobs + WARMUP_JOBS // 2]]
            log.info("jobs: %d jobs on the worker agent ...", len(singles))
            figure.agent_processing_ms = agent_start(cluster, admin, singles)
            log.info("jobs: a %d-photo facecrop batch ...", shape.batch_photos)
            figure.batches["batch"] = facecrop_batch(admin, f"{HOLDER}/{WATCH}/batch")
            log.info("jobs: a %d-photo camera-size facecrop batch ...", shape.camera_photos)
            figure.batches["camera"] = facecrop_batch(admin, f"{HOLDER}/{WATCH}/camera")
            cluster.start_worker(SPARE, executors=("bgremove",))
            cluster.wait_worker_ready(SPARE)
            log.info("jobs: a worker killed mid-job ...")
            figure.recovery_s = recovery(cluster, admin, f"{HOLDER}/{WATCH}/big.jpg")
        finally:
            admin.close()
    finally:
        cluster.close()
        trash.discard(run_dir)
    return figure


def _sha256(path: Path) -> str:
    from photonic.media.hashing import sha256_file

    return sha256_file(path)[0]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.jobs", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer jobs and a smaller batch")
    p.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    started = time.perf_counter()
    work_dir = datagen.DEFAULT_CACHE_DIR / "work-jobs"
    figure = measure(work_dir, quick=args.quick)
    samples = {(PHOTONIC, k): v for k, v in jobs_values(figure).items()}
    samples[(PHOTONIC, "jobs.dispatch.all")] = figure.dispatch_ms
    samples[(PHOTONIC, "jobs.agent_start.all")] = figure.agent_processing_ms
    rows = build_rows(figure_specs(jobs_shape(quick=args.quick)), samples)
    report_group_run("jobs", args.quick, rows, samples, started, args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
