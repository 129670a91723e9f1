"""Dashboard figures: how fast the web API answers the pages the dashboard opens against a
catalog of 100,000 photos, how soon an event reaches a WebSocket client, and how many
thumbnails a second the server hands out. `python -m bench.dashboard [--quick]` alone, or
with the rest via `bench.run`.

Everything runs the real `photonic server` (its web layer on loopback, an admin token from
`photonic web token create`) and, for the events and thumbnails, a real agent syncing real
JPEGs over mutual TLS. The catalog is filled before the server starts through the catalog's
own commit API (`SqliteCatalog.commit_version`, one transaction per photo, made durable once
at the end): no rows are written behind the catalog's back. Request times are measured by the
client on loopback, one request at a time, so they are the server's time plus a loopback round
trip.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench import datagen, trash
from bench.peers.base import free_port, port_open
from bench.peers.photonic import ServerLog, photonic_argv, stop_process
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

log = logging.getLogger("bench.dashboard")
BENCH_DIR = Path(__file__).resolve().parent
LIBRARY_AGENT, SYNC_AGENT, OTHER_AGENTS = "bench-laptop", "bench-camera", ("bench-desktop",)
WATCH = "photos"
SHOOTS_PER_YEAR = 20
THUMB_SIZE = 256
THUMB_CONCURRENCY = 4
CACHED_ROUNDS = 5
NOT_BUILT = "thumbnails: route not built"


@dataclass(frozen=True)
class DashboardShape:
    catalog_photos: int
    folder_photos: int  # photos in one shoot folder (the folder listing measured)
    requests: int  # timed requests per route
    events: int  # photos synced one at a time for the event latency (their thumbnails too)
    photo_side_px: int = 2400


def dashboard_shape(*, quick: bool) -> DashboardShape:
    return DashboardShape(100_000, 1000, 50 if quick else 200, 10 if quick else 30)


def routes(shape: DashboardShape) -> dict[str, str]:
    """{figure key: path} of the pages measured: the overview, each level of the library
    down to one shoot folder of folder_photos photos."""
    year = _rel_path(0, shape).split("/")[0]
    shoot = _rel_path(0, shape).rsplit("/", 1)[0]
    return {
        "overview": "/api/v1/agents",
        "library_root": "/api/v1/library?folder=",
        "library_agent": f"/api/v1/library?folder={LIBRARY_AGENT}",
        "library_watch": f"/api/v1/library?folder={LIBRARY_AGENT}/{WATCH}",
        "library_year": f"/api/v1/library?folder={LIBRARY_AGENT}/{WATCH}/{year}",
        "library_folder": f"/api/v1/library?folder={LIBRARY_AGENT}/{WATCH}/{shoot}",
    }


def _rel_path(index: int, shape: DashboardShape) -> str:
    shoot, n = divmod(index, shape.folder_photos)
    year, shoot_in_year = divmod(shoot, SHOOTS_PER_YEAR)
    return f"{2000 + year}/shoot-{shoot_in_year:02d}/IMG_{n:05d}.jpg"


@dataclass
class DashboardFigure:
    route_ms: dict[str, list[float]] = field(default_factory=dict)
    commit_to_ws_ms: list[float] = field(default_factory=list)
    """The server's file_committed log line -> the WebSocket client has the event."""
    file_to_ws_ms: list[float] = field(default_factory=list)
    """The photo appears in the watched folder -> the WebSocket client has the event."""
    api_to_ws_ms: list[float] = field(default_factory=list)
    """POST pause sent -> the WebSocket client has the `paused` event."""
    thumbs_uncached_per_s: float | None = None
    thumbs_cached_per_s: float | None = None
    notes: list[str] = field(default_factory=list)


def dashboard_values(figure: DashboardFigure) -> dict[str, list[float]]:
    """The figure as bench samples (one list per key of figure_specs)."""
    values: dict[str, list[float]] = {}
    for key, times in figure.route_ms.items():
        if times:
            values[f"dashboard.{key}.p50"] = [percentile(times, 50)]
            values[f"dashboard.{key}.p95"] = [percentile(times, 95)]
    for key, times in (("commit_to_ws", figure.commit_to_ws_ms),
                       ("api_to_ws", figure.api_to_ws_ms)):
        if times:
            values[f"dashboard.{key}.p50"] = [percentile(times, 50)]
            values[f"dashboard.{key}.p95"] = [percentile(times, 95)]
    if figure.file_to_ws_ms:
        values["dashboard.file_to_ws.p50"] = [percentile(figure.file_to_ws_ms, 50)]
    if figure.thumbs_uncached_per_s is not None:
        values["dashboard.thumbs.uncached"] = [figure.thumbs_uncached_per_s]
    if figure.thumbs_cached_per_s is not None:
        values["dashboard.thumbs.cached"] = [figure.thumbs_cached_per_s]
    return values


def figure_specs(shape: DashboardShape) -> list[FigureSpec]:
    """The dashboard rows and the issue's goals (p95 <= 100 ms a page, <= 250 ms an event)."""
    catalog = f"{shape.catalog_photos:,}-photo catalog"
    what = {"overview": "GET /api/v1/agents (overview)",
            "library_root": "library, top level (agents)",
            "library_agent": "library, an agent (its watches)",
            "library_watch": f"library, a watch ({shape.catalog_photos:,} photos beneath)",
            "library_year": f"library, a year ({SHOOTS_PER_YEAR * shape.folder_photos:,} "
                            "photos beneath)",
            "library_folder": f"library, a folder of {shape.folder_photos:,} photos"}
    rows: list[FigureSpec] = []
    for key, name in what.items():
        rows += [FigureSpec(f"{catalog}: {name}, p50", "ms", f"dashboard.{key}.p50"),
                 FigureSpec(f"{catalog}: {name}, p95", "ms", f"dashboard.{key}.p95",
                            target=Target(TargetKind.AT_MOST, 100))]
    for key, name in (("commit_to_ws", "file committed -> WebSocket client"),
                      ("api_to_ws", "POST pause -> WebSocket client has the event")):
        rows += [FigureSpec(f"event: {name}, p50", "ms", f"dashboard.{key}.p50"),
                 FigureSpec(f"event: {name}, p95", "ms", f"dashboard.{key}.p95",
                            target=Target(TargetKind.AT_MOST, 250))]
    return [
        *rows,
        FigureSpec("event: photo written in a watched folder -> WebSocket client (agent "
                   "settle delay included), p50", "ms", "dashboard.file_to_ws.p50"),
        FigureSpec(f"thumbnails {THUMB_SIZE} px, uncached ({shape.photo_side_px} px JPEGs, "
                   f"{THUMB_CONCURRENCY} at once)", "thumbs/s", "dashboard.thumbs.uncached"),
        FigureSpec(f"thumbnails {THUMB_SIZE} px, cached ({THUMB_CONCURRENCY} at once)",
                   "thumbs/s", "dashboard.thumbs.cached"),
    ]


# --- the catalog -----------------------------------------------------------------------------


def seed_catalog(storage: Path, shape: DashboardShape) -> float:
    """Commits catalog_photos photos of LIBRARY_AGENT (folders <year>/shoot-NN of folder_photos
    each) through SqliteCatalog.commit_version, before the server starts; returns seconds."""
    from photonic.models import ExifSummary
    from photonic.server.catalog import NewVersion, SqliteCatalog

    storage.mkdir(parents=True, exist_ok=True)
    catalog = SqliteCatalog(storage / "catalog.db")
    started = time.perf_counter()
    try:
        for agent in (LIBRARY_AGENT, *OTHER_AGENTS):
            catalog.register_agent(agent, "bench-host", "bench")
        base_ms = 1_700_000_000_000
        for i in range(shape.catalog_photos):
            rel = _rel_path(i, shape)
            sha = hashlib.sha256(f"photonic-bench-dashboard-{i}".encode()).hexdigest()
            exif = ExifSummary(capture_time_unix_ms=base_ms + i * 1000, width=6000, height=4000)
            catalog.commit_version(NewVersion(
                LIBRARY_AGENT, WATCH, rel, sha, 8_000_000 + i % 1000, exif, 1,
                f"{LIBRARY_AGENT}/{WATCH}/{rel}", True), durable=False)
        catalog.make_durable()
    finally:
        catalog.close()
    return time.perf_counter() - started


# --- the daemons -----------------------------------------------------------------------------


class DashboardCluster:
    """A server (gRPC and web on loopback) with its own PKI, and one syncing agent."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.argv = photonic_argv()
        self.certs = run_dir / "certs"
        self.storage = run_dir / "server"
        self.port, self.web_port = free_port(), free_port()
        self.server_log = ServerLog(run_dir / "server.log")
        self._procs: list[subprocess.Popen[bytes]] = []
        self._cli("certs", "init", "--dir", str(self.certs))
        self._cli("certs", "issue", SYNC_AGENT, "--dir", str(self.certs))
        self.config = self._write("server.yaml", {
            "server": {"bind_address": f"127.0.0.1:{self.port}", "storage_path": str(
                self.storage), "web_ui_port": self.web_port, "web_ui_bind": "127.0.0.1"},
            "security": self._security("server"), "default_scopes": ["sync"]})

    def _cli(self, *args: str) -> str:
        done = subprocess.run([*self.argv, *args], check=True, capture_output=True, text=True,
                              timeout=120)
        return done.stdout

    def _write(self, name: str, config: dict[str, Any]) -> Path:
        path = self.dir / name
        path.write_text(yaml.safe_dump(config))
        return path

    def _security(self, who: str) -> dict[str, str]:
        return {"cert_path": str(self.certs / f"{who}.crt"),
                "key_path": str(self.certs / f"{who}.key"), "ca_path": str(self.certs / "ca.crt")}

    def token(self) -> str:
        out = self._cli("web", "token", "create", "--config", str(self.config), "--name", "bench")
        return out.strip().splitlines()[-1]

    def _start(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        out = (self.dir / f"{name}.log").open("ab")
        proc = subprocess.Popen([*self.argv, *args], stdout=out, stderr=out)
        self._procs.append(proc)
        return proc

    def start_server(self) -> None:
        server = self._start("server", ["server", "--config", str(self.config)])

        def up() -> bool:
            if server.poll() is not None:
                raise RuntimeError("photonic server exited: " + self.log_tail("server"))
            return port_open(self.web_port) and port_open(self.port)

        wait_until(up, timeout_s=120, what="photonic server to listen")

    def start_agent(self, watch: Path) -> None:
        config = self._write("agent.yaml", {
            "agent": {"id": SYNC_AGENT, "server_endpoints": [f"127.0.0.1:{self.port}"],
                      "buffer_path": str(self.dir / "buffer"), "settle_delay": "0.2s",
                      "watch": [{"path": str(watch), "name": WATCH, "mode": "reference"}]},
            "security": self._security(SYNC_AGENT)})
        self._start("agent", ["agent", "--config", str(config)])

    def log_tail(self, name: str) -> str:
        return (self.dir / f"{name}.log").read_text(errors="replace")[-3000:]

    def close(self) -> None:
        for proc in reversed(self._procs):
            stop_process(proc)


# --- measuring -------------------------------------------------------------------------------


async def time_routes(session: aiohttp.ClientSession, base: str, shape: DashboardShape
                      ) -> dict[str, list[float]]:
    """Each route `requests` times, one at a time, after 3 untimed warm-up requests."""
    found: dict[str, list[float]] = {}
    for key, path in routes(shape).items():
        times: list[float] = []
        for n in range(3 + shape.requests):
            started = time.perf_counter()
            async with session.get(base + path) as reply:
                body = await reply.read()
                if reply.status != 200:
                    raise RuntimeError(f"GET {path}: {reply.status} {body[:300]!r}")
            if n >= 3:
                times.append((time.perf_counter() - started) * 1000)
        found[key] = times
        log.info("dashboard: %s p95 %.1f ms", key, percentile(times, 95))
    return found


async def _event(sock: aiohttp.ClientWebSocketResponse, kind: str, path: str = ""
                 ) -> tuple[dict[str, Any], float]:
    """The next event of kind (for path, when given) and the time it arrived."""
    while True:
        message = await sock.receive_json(timeout=120)
        if message["kind"] == kind and (not path or message["relative_path"] == path):
            return message, time.time()


async def commit_events(sock: aiohttp.ClientWebSocketResponse, cluster: DashboardCluster,
                        staged: list[Path], watch: Path, figure: DashboardFigure) -> list[str]:
    """Moves each staged photo into the watched folder in turn and waits for its
    file_committed event; the first one (agent start, connect) is not timed. Returns the
    photos' sha256s."""
    shas: list[str] = []
    for index, photo in enumerate(staged):
        appeared = time.time()
        os.replace(photo, watch / photo.name)
        message, received = await _event(sock, "file_committed", photo.name)
        shas.append(str(message["sha256"]))
        await asyncio.to_thread(wait_until, functools.partial(_logged, cluster, photo.name),
                                timeout_s=30, what=f"the commit log line of {photo.name}")
        if index > 0:
            figure.commit_to_ws_ms.append(
                (received - cluster.server_log.committed_at[photo.name]) * 1000)
            figure.file_to_ws_ms.append((received - appeared) * 1000)
    return shas


def _logged(cluster: DashboardCluster, name: str) -> bool:
    cluster.server_log.poll()
    return name in cluster.server_log.committed_at


async def api_events(session: aiohttp.ClientSession, sock: aiohttp.ClientWebSocketResponse,
                     base: str, count: int) -> list[float]:
    """POST pause (alternately true and false) -> the `paused` event on the WebSocket."""
    times: list[float] = []
    for n in range(count + 1):
        sent = time.time()
        async with session.post(f"{base}/api/v1/agents/{LIBRARY_AGENT}/pause",
                                json={"paused": n % 2 == 0}) as reply:
            if reply.status != 200:
                raise RuntimeError(f"pause: {reply.status} {await reply.text()}")
        _message, received = await _event(sock, "paused")
        if n > 0:
            times.append((received - sent) * 1000)
    return times


async def thumbnails(session: aiohttp.ClientSession, base: str, shas: list[str],
                     figure: DashboardFigure) -> None:
    """Every photo's thumbnail once (rendered), then CACHED_ROUNDS times again (cached)."""
    async with session.get(f"{base}/thumb/{shas[0]}?size={THUMB_SIZE}") as probe:
        await probe.read()
        if probe.status == 404 and "json" not in probe.content_type:
            figure.notes.append(NOT_BUILT)
            return
    gate = asyncio.Semaphore(THUMB_CONCURRENCY)

    async def one(sha: str) -> None:
        async with gate, session.get(f"{base}/thumb/{sha}?size={THUMB_SIZE}") as reply:
            body = await reply.read()
            if reply.status != 200 or not body.startswith(b"\xff\xd8"):
                raise RuntimeError(f"thumbnail {sha[:12]}: {reply.status} {body[:200]!r}")

    rest = shas[1:]  # the probe rendered the first one
    if rest:
        started = time.perf_counter()
        await asyncio.gather(*(one(s) for s in rest))
        figure.thumbs_uncached_per_s = len(rest) / (time.perf_counter() - started)
    started = time.perf_counter()
    await asyncio.gather(*(one(s) for _ in range(CACHED_ROUNDS) for s in shas))
    figure.thumbs_cached_per_s = CACHED_ROUNDS * len(shas) / (time.perf_counter() - started)


async def _measure_live(cluster: DashboardCluster, token: str, shape: DashboardShape,
                        staged: list[Path], watch: Path, figure: DashboardFigure) -> None:
    base = f"http://127.0.0.1:{cluster.web_port}"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        figure.route_ms = await time_routes(session, base, shape)
        async with session.ws_connect(f"{base}/api/v1/ws") as sock:
            log.info("dashboard: %d photos synced one at a time ...", len(staged))
            cluster.start_agent(watch)
            shas = await commit_events(sock, cluster, staged, watch, figure)
            figure.api_to_ws_ms = await api_events(session, sock, base, shape.events)
        log.info("dashboard: thumbnails ...")
        await thumbnails(session, base, shas, figure)


def stage_photos(folder: Path, shape: DashboardShape, seed: int) -> list[Path]:
    """events + 1 distinct camera-like JPEGs (the first one is the warm-up)."""
    from tests.support.photos import make_jpeg

    folder.mkdir(parents=True, exist_ok=True)
    side = shape.photo_side_px
    return [make_jpeg(folder / f"DSC_{i:04d}.jpg", seed=seed + i, width=side,
                      height=side * 2 // 3) for i in range(shape.events + 1)]


def measure(work_dir: Path, *, quick: bool = False, shape: DashboardShape | None = None,
            seed: int = datagen.DEFAULT_SEED) -> DashboardFigure:
    """Every dashboard figure on one server (see the module docstring)."""
    shape = shape or dashboard_shape(quick=quick)
    run_dir = work_dir / "dashboard"
    if run_dir.exists():  # left by an interrupted run
        trash.discard(run_dir)
    run_dir.mkdir(parents=True)
    figure = DashboardFigure()
    cluster = DashboardCluster(run_dir)
    try:
        staged = stage_photos(run_dir / "staged", shape, seed)
        watch = run_dir / "watch"
        watch.mkdir()
        log.info("dashboard: committing %d photos to the catalog ...", shape.catalog_photos)
        seed_s = seed_catalog(cluster.storage, shape)
        figure.notes.append(
            f"catalog: {shape.catalog_photos:,} photos committed through the catalog's own "
            f"commit API (SqliteCatalog.commit_version, one transaction each, one "
            f"make_durable at the end) in {seed_s:.1f} s, before the server started")
        token = cluster.token()
        cluster.start_server()
        asyncio.run(_measure_live(cluster, token, shape, staged, watch, figure))
    finally:
        cluster.close()
        trash.discard(run_dir)
    return figure


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard",
                                description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer requests and events")
    p.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    started = time.perf_counter()
    figure = measure(datagen.DEFAULT_CACHE_DIR / "work-dashboard", quick=args.quick)
    samples = {(PHOTONIC, k): v for k, v in dashboard_values(figure).items()}
    rows = build_rows(figure_specs(dashboard_shape(quick=args.quick)), samples)
    report_group_run("dashboard", args.quick, rows, samples, started, args.results_dir)
    for note in figure.notes:
        print(f"\n{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
