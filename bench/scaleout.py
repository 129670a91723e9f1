"""Scale-out figures (issue 20): photonic on PostgreSQL + an S3-compatible store against the
embedded default, in the same run.

1. First sync of the large and small sets, one agent, a fresh server each run: (a) embedded
   (SQLite catalog, local objects), (b) `catalog.url: postgresql://...` on the bench's own
   PostgreSQL 15 cluster + `storage.objects: s3://...` on moto. Runs interleaved, the order
   rotating run by run. Each side's CPU: the agent, the photonic server, and (b) PostgreSQL
   and the S3 endpoint.
2. Manifest check (1,000 files, new and stored) against a PostgreSQL catalog of 10,000,000
   photos (cached, bench/scaleout_catalog.py), through a real server, as bench/scale.py times
   it against the SQLite catalog. Objects are local here: the figure is the catalog's.
3. N agents syncing at once to two servers on one PostgreSQL database and one bucket, half the
   agents listing the servers one way round, half the other, so the load splits: aggregate
   throughput, fairness (the slowest agent's throughput / the mean), per-side CPU, and every
   photo checked afterwards in the catalog and the bucket.

moto is an in-process Python implementation of S3 (bench/moto_endpoint.py): the S3 figures
measure photonic's S3 path against a slow local endpoint, not AWS, MinIO or Ceph.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench import datagen, load, scale, trash
from bench.datagen import DataSet, SetSpec
from bench.peers.base import link_tree
from bench.peers.photonic import PhotonicPeer, parse_logfmt
from bench.procstat import ProcUsage
from bench.report import (
    PHOTONIC,
    FigureSpec,
    Target,
    TargetKind,
    build_rows,
    report_group_run,
)
from bench.scaleout_catalog import ensure_pg_catalog, install_pg_catalog
from bench.scaleout_services import (
    MotoService,
    PgService,
    aws_environment,
    object_key,
    s3_settings,
)

log = logging.getLogger("bench.scaleout")

EMBEDDED = "embedded"
"""The tool name of the embedded default's samples: the peer the scale-out side is set against
(the scale-out side's samples are photonic's)."""
SCALEOUT = PHOTONIC
BACKENDS = (EMBEDDED, SCALEOUT)
SETS = ("large", "small")
LOAD_SET = "scaleout-load"
"""The many-agents figure's photos: the load group's set (the same files), under this name."""
AGENT = "bench-agent"
_WATCH = "photos"
_MB = 1_000_000
_GB = 1_000_000_000


@dataclass(frozen=True)
class ScaleoutShape:
    """How big the scale-out figures are; quick keeps every shape and shrinks the counts."""

    runs: int
    catalog_photos: int
    manifest_rounds: int


def scaleout_shape(*, quick: bool) -> ScaleoutShape:
    return ScaleoutShape(1, 100_000, 2) if quick else ScaleoutShape(3, 10_000_000, 5)


def set_specs(*, quick: bool) -> dict[str, SetSpec]:
    """The data sets the group syncs, by the name `measure` looks them up under."""
    standard = datagen.standard_sets(quick=quick)
    specs = {name: standard[name] for name in SETS}
    specs[LOAD_SET] = load.load_set_spec(load.load_shape(quick=quick))
    return specs


def run_order(run: int) -> tuple[str, ...]:
    """The backends' order in run `run`: rotated each run, so neither always goes first."""
    shift = run % len(BACKENDS)
    return BACKENDS[shift:] + BACKENDS[:shift]


def fairness(throughputs: Sequence[float]) -> float:
    """The slowest agent's throughput over the mean (1.0: all equal; the goal is >= 0.5)."""
    if not throughputs:
        raise ValueError("fairness of no agents")
    mean = sum(throughputs) / len(throughputs)
    return min(throughputs) / mean if mean > 0 else 0.0


def endpoint_orders(endpoints: Sequence[str], agents: int) -> list[list[str]]:
    """Each agent's server_endpoints: every agent lists every server, the even agents in the
    given order, the odd ones reversed, so agents that take the first reachable endpoint
    split between the first two servers."""
    forward, backward = list(endpoints), list(reversed(endpoints))
    return [forward if i % 2 == 0 else backward for i in range(agents)]


def cpu_per(dataset: DataSet) -> tuple[str, float]:
    """The unit a set's CPU rows use and its divisor: per GB for big photos, per 1,000 photos
    for small ones (as the sync group's CPU rows)."""
    if dataset.total_bytes / max(1, dataset.count) >= _MB:
        return "CPU-s/GB", dataset.total_bytes / _GB
    return "CPU-s/1,000 photos", dataset.count / 1000


@contextmanager
def engines(work_dir: Path, *, pg: bool = True, s3: bool = True
            ) -> Iterator[tuple[PgService | None, MotoService | None]]:
    """A fresh PostgreSQL cluster and moto's S3 server for one figure, stopped after it."""
    pg_service = moto = None
    with aws_environment():
        try:
            pg_service = PgService.fresh(work_dir / "pg") if pg else None
            moto = MotoService() if s3 else None
            yield pg_service, moto
        finally:
            if moto is not None:
                moto.close()
            if pg_service is not None:
                pg_service.close()


# --- 1. first syncs, PostgreSQL + S3 against the embedded default ----------------------------


@dataclass(frozen=True)
class FirstSync:
    """One `agent --once` first sync of a set into a fresh server of one backend."""

    backend: str
    seconds: float
    agent: ProcUsage
    server: ProcUsage
    engines_cpu_s: float  # PostgreSQL + the S3 endpoint over the clock (0 when embedded)


def first_syncs(work_dir: Path, sets: dict[str, DataSet], runs: int
                ) -> dict[tuple[str, str], list[float]]:
    """Every run: each set through each backend, the backends' order rotating run by run."""
    samples: dict[tuple[str, str], list[float]] = {}
    with engines(work_dir) as (pg, moto):
        assert pg is not None and moto is not None
        for run in range(runs):
            for name in SETS:
                for backend in run_order(run):
                    log.info("scale-out: first sync of the %s set, %s, run %d/%d", name,
                             backend, run + 1, runs)
                    result = first_sync(work_dir / f"{backend}-{name}-{run}", sets[name],
                                        backend, pg, moto)
                    for key, value in first_sync_values(name, sets[name], result).items():
                        samples.setdefault((backend, key), []).append(value)
    return samples


def first_sync(run_dir: Path, dataset: DataSet, backend: str, pg: PgService,
               moto: MotoService) -> FirstSync:
    run_dir.mkdir(parents=True)
    source = run_dir / "source"
    link_tree(dataset.root, source)
    bucket = None
    settings: dict[str, dict[str, object]] = {}
    if backend == SCALEOUT:
        bucket = moto.new_bucket()
        settings = {"catalog": {"url": pg.new_database()},
                    "storage": s3_settings(moto, bucket)}
    peer = PhotonicPeer(run_dir, settings=settings)
    try:
        peer.start_server()
        before = (pg.usage().cpu_s + moto.usage().cpu_s) if bucket else 0.0
        run = peer.first_sync(source, dataset.count, dataset.total_bytes)
        engines_cpu = (pg.usage().cpu_s + moto.usage().cpu_s - before) if bucket else 0.0
    finally:
        peer.close()
        if bucket is not None:
            moto.delete_bucket(bucket)
        trash.discard(run_dir)
    assert run.sender is not None and run.receiver is not None
    return FirstSync(backend, run.seconds, run.sender, run.receiver, engines_cpu)


def first_sync_values(name: str, dataset: DataSet, run: FirstSync) -> dict[str, float]:
    _unit, divisor = cpu_per(dataset)
    values = {
        f"scaleout.{name}.mbps": dataset.total_bytes / _MB / run.seconds,
        f"scaleout.{name}.files_per_s": dataset.count / run.seconds,
        f"scaleout.{name}.cpu.agent": run.agent.cpu_s / divisor,
        f"scaleout.{name}.cpu.server": run.server.cpu_s / divisor,
    }
    if run.backend == SCALEOUT:
        values[f"scaleout.{name}.cpu.engines"] = run.engines_cpu_s / divisor
    return values


# --- 2. manifest check over a PostgreSQL catalog ---------------------------------------------


def pg_manifest(work_dir: Path, shape: ScaleoutShape, *,
                cache_dir: Path = datagen.DEFAULT_CACHE_DIR) -> scale.ManifestFigure:
    """bench/scale.py's manifest timing on a copy of the cached PostgreSQL catalog. The
    scrub is off: the synthetic rows have no objects, and a pass over them would quarantine
    them while the manifests are timed (the SQLite figure marks a pass as just finished).
    The catalog is analyzed once the stored contents are synced (analyze_catalog)."""
    run_dir = work_dir / "scaleout-manifest"
    run_dir.mkdir(parents=True)
    started = time.perf_counter()
    data = ensure_pg_catalog(shape.catalog_photos, cache_dir, work_dir)
    pg, url = install_pg_catalog(data, run_dir / "pg")
    seed_s = time.perf_counter() - started
    try:
        peer = PhotonicPeer(run_dir, settings={"catalog": {"url": url},
                                               "storage": {"scrub_interval": 0}})
        try:
            return scale.time_manifests(peer, AGENT, shape.catalog_photos,
                                        shape.manifest_rounds, seed_s,
                                        settle=lambda: analyze_catalog(url))
        finally:
            peer.close()
    finally:
        pg.close()
        trash.discard(run_dir)


def analyze_catalog(url: str) -> None:
    """What autovacuum does within a minute on any server that has run longer: fresh
    statistics for the tables the stored sync just grew. The cached catalog seeds photos
    only and was analyzed with every other table empty (VACUUM ANALYZE records 0 rows); the
    sync then grows locations, versions and object_checks from 0 to thousands of rows in
    seconds, before autovacuum's first look (autovacuum_naptime, 60 s). Without this the
    timed statements run on plans made for empty tables (each row's foreign-key check
    scanning all of locations, object_checks read by a sequential scan per manifest):
    stored 1,000-1,500 ms instead of ~290, a state no catalog of 10M photos is in (bench
    README, scale-out manifest check)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def pg_manifest_values(figure: scale.ManifestFigure) -> dict[str, list[float]]:
    return {"scaleout.manifest.new_ms": figure.new_files_ms,
            "scaleout.manifest.stored_ms": figure.stored_files_ms}


# --- 3. many agents, two servers, one PostgreSQL, one bucket --------------------------------


@dataclass
class TwoServerFigure:
    agents: int
    files: int
    payload_bytes: int
    wall_s: float
    agent_mbps: list[float]
    server_cpu_s: list[float]
    pg_cpu_s: float
    s3_cpu_s: float
    agents_cpu_s: float
    missing_or_damaged: int
    files_by_server: list[int] = field(default_factory=list)


def two_servers(work_dir: Path, certs: Path, dataset: DataSet, agents: int) -> TwoServerFigure:
    run_dir = work_dir / "scaleout-two-servers"
    run_dir.mkdir(parents=True)
    ids = load.agent_ids(agents)
    shares = load.split_evenly([rel for rel, _ in dataset.files], agents)
    sources = [_link_share(dataset.root, share, run_dir / f"source-{i}")
               for i, share in enumerate(shares)]
    share_bytes = [sum(dataset.root.joinpath(rel).stat().st_size for rel in share)
                   for share in shares]
    peers: list[PhotonicPeer] = []
    with engines(run_dir) as (pg, moto):
        assert pg is not None and moto is not None
        bucket = moto.new_bucket()
        catalog_url = pg.new_database()
        settings: dict[str, dict[str, object]] = {
            "catalog": {"url": catalog_url}, "storage": s3_settings(moto, bucket)}
        try:
            for side in ("a", "b"):
                side_dir = run_dir / side
                side_dir.mkdir()
                peers.append(PhotonicPeer(side_dir, agents=(), certs=certs,
                                          limits=load.server_limits(agents),
                                          settings=settings))
                peers[-1].start_server()  # one after the other: the first applies migrations
            orders = endpoint_orders([p.endpoint for p in peers], agents)
            before = [p.server_usage().cpu_s for p in peers]
            pg_before, s3_before = pg.usage().cpu_s, moto.usage().cpu_s
            with ThreadPoolExecutor(max_workers=agents) as pool:
                started = time.perf_counter()
                runs = list(pool.map(peers[0].run_once, ids, sources, orders))
                wall_s = time.perf_counter() - started
            server_cpu = [p.server_usage().cpu_s - b for p, b in zip(peers, before, strict=True)]
            pg_cpu, s3_cpu = pg.usage().cpu_s - pg_before, moto.usage().cpu_s - s3_before
            missing = count_missing(catalog_url, moto, bucket, dataset.root,
                                    ids, shares)
            by_server = [sum(committed_by_agent(p.server_log_path.read_text(
                errors="replace")).values()) for p in peers]
        finally:
            for peer in peers:
                peer.close()
            trash.discard(run_dir)
    return TwoServerFigure(
        agents, dataset.count, dataset.total_bytes, wall_s,
        [b / _MB / r.command.wall_s for b, r in zip(share_bytes, runs, strict=True)],
        server_cpu, pg_cpu, s3_cpu, sum(r.command.usage.cpu_s for r in runs), missing,
        by_server)


def _link_share(root: Path, relative_paths: Sequence[str], destination: Path) -> Path:
    for rel in relative_paths:
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.hardlink_to(root / rel)
    return destination


def committed_by_agent(server_log: str) -> Counter[str]:
    """The server's `event=file_committed` lines, counted by agent: which server took whose
    photos."""
    counts: Counter[str] = Counter()
    for line in server_log.splitlines():
        if "file_committed" in line:
            fields = parse_logfmt(line)
            if fields.get("event") == "file_committed":
                counts[fields.get("agent", "?")] += 1
    return counts


def count_missing(catalog_url: str, moto: MotoService, bucket: str, source_root: Path,
                  ids: Sequence[str], shares: Sequence[Sequence[str]]) -> int:
    """Photos not in the catalog as their path's head with the source's SHA-256, or whose
    object is not in the bucket at its content address with the source's size."""
    import psycopg

    with psycopg.connect(catalog_url) as conn:
        heads = {(agent, rel): sha for agent, rel, sha in conn.execute(
            "SELECT l.agent_id, l.rel_path, v.sha256 FROM locations l JOIN versions v "
            "ON v.location_id = l.id AND v.version = l.head_version WHERE l.watch_name = %s",
            (_WATCH,)).fetchall()}
    sizes = {o.key: o.size for o in moto.objects(bucket)}
    missing = 0
    for agent, share in zip(ids, shares, strict=True):
        for rel in share:
            path = source_root / rel
            with path.open("rb") as handle:
                sha = hashlib.file_digest(handle, "sha256").hexdigest()
            if heads.get((agent, rel)) != sha or sizes.get(object_key(sha)) != path.stat().st_size:
                missing += 1
    return missing


def two_server_values(figure: TwoServerFigure) -> dict[str, list[float]]:
    return {
        "scaleout.two.mbps": [figure.payload_bytes / _MB / figure.wall_s],
        "scaleout.two.files_per_s": [figure.files / figure.wall_s],
        "scaleout.two.fairness": [fairness(figure.agent_mbps)],
        "scaleout.two.missing": [float(figure.missing_or_damaged)],
        "scaleout.two.server_cpu_s": [sum(figure.server_cpu_s)],
        "scaleout.two.pg_cpu_s": [figure.pg_cpu_s],
        "scaleout.two.s3_cpu_s": [figure.s3_cpu_s],
        "scaleout.two.agents_cpu_s": [figure.agents_cpu_s],
        "scaleout.two.agent_mbps.all": figure.agent_mbps,
        "scaleout.two.server_cpu_s.all": figure.server_cpu_s,
        "scaleout.two.files_by_server.all": [float(n) for n in figure.files_by_server],
    }


# --- the group ------------------------------------------------------------------------------

Samples = dict[tuple[str, str], list[float]]
Attempt = Callable[[str, Callable[[], None]], None]


@dataclass
class GroupResult:
    samples: Samples = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


FIGURES = ("syncs", "manifest", "agents")
"""The group's three figures, by the name `--only` takes."""


def measure(work_dir: Path, sets: dict[str, DataSet], *, quick: bool, runs: int | None,
            attempt: Attempt, only: Sequence[str] = FIGURES) -> GroupResult:
    """The three figures (or those in only), each through `attempt` (bench.run's: a failure
    is kept in the report and the next figure runs). runs: first-sync runs, by default the
    shape's."""
    shape = scaleout_shape(quick=quick)
    agents = load.load_shape(quick=quick).syncing_agents
    result = GroupResult()

    def add(tool: str, values: dict[str, list[float]]) -> None:
        for key, value in values.items():
            result.samples.setdefault((tool, key), []).extend(value)

    def syncs() -> None:
        for (tool, key), values in first_syncs(work_dir, sets, runs or shape.runs).items():
            add(tool, {key: values})

    def manifest() -> None:
        add(PHOTONIC, pg_manifest_values(pg_manifest(work_dir, shape)))

    def many_agents() -> None:
        certs = load.ensure_pki(datagen.DEFAULT_CACHE_DIR, agents)
        figure = two_servers(work_dir, certs, sets[LOAD_SET], agents)
        add(PHOTONIC, two_server_values(figure))
        result.notes.append(f"scale-out, {figure.agents} agents on two servers: photos "
                            f"committed by each server {figure.files_by_server}")

    if "syncs" in only:
        attempt("photonic: scale-out first syncs, PostgreSQL + S3 vs embedded", syncs)
    if "manifest" in only:
        attempt("photonic: scale-out manifest check over a PostgreSQL catalog", manifest)
    if "agents" in only:
        attempt(f"photonic: scale-out, {agents} agents on two servers", many_agents)
    return result


# --- table rows ------------------------------------------------------------------------------


def figure_specs(sets: dict[str, DataSet], shape: ScaleoutShape, agents: int
                 ) -> list[FigureSpec]:
    """The rows, the scale-out side against the embedded default where there is one."""
    rows: list[FigureSpec] = []
    both = "PostgreSQL + S3 (moto) vs embedded"
    for name in SETS:
        if name not in sets:
            continue
        dataset = sets[name]
        unit, _ = cpu_per(dataset)
        what = f"first sync, {name} set ({dataset.count:,} photos), {both}"
        rows += [
            FigureSpec(what, "MB/s", f"scaleout.{name}.mbps", EMBEDDED),
            FigureSpec(what, "files/s", f"scaleout.{name}.files_per_s", EMBEDDED),
            FigureSpec(f"{what}: agent CPU", unit, f"scaleout.{name}.cpu.agent", EMBEDDED),
            FigureSpec(f"{what}: server CPU", unit, f"scaleout.{name}.cpu.server", EMBEDDED),
            FigureSpec(f"first sync, {name} set: PostgreSQL + moto CPU", unit,
                       f"scaleout.{name}.cpu.engines"),
        ]
    catalog = f"PostgreSQL catalog of {shape.catalog_photos:,}"
    at_most_100 = Target(TargetKind.AT_MOST, 100)
    rows += [
        FigureSpec(f"manifest check, 1,000 new files, {catalog}", "ms",
                   "scaleout.manifest.new_ms", target=at_most_100),
        FigureSpec(f"manifest check, 1,000 stored files, {catalog}", "ms",
                   "scaleout.manifest.stored_ms", target=at_most_100),
    ]
    two = f"{agents} agents at once, two servers, one PostgreSQL + one bucket (moto)"
    rows += [
        FigureSpec(f"{two}: aggregate", "MB/s", "scaleout.two.mbps"),
        FigureSpec(f"{two}: aggregate", "files/s", "scaleout.two.files_per_s"),
        FigureSpec(f"{two}: slowest agent / mean", "ratio", "scaleout.two.fairness",
                   target=Target(TargetKind.AT_LEAST, 0.5)),
        FigureSpec(f"{two}: photos missing or damaged", "photos", "scaleout.two.missing",
                   target=Target(TargetKind.AT_MOST, 0)),
        FigureSpec(f"{two}: both servers' CPU", "CPU-s", "scaleout.two.server_cpu_s"),
        FigureSpec(f"{two}: PostgreSQL CPU", "CPU-s", "scaleout.two.pg_cpu_s"),
        FigureSpec(f"{two}: moto CPU", "CPU-s", "scaleout.two.s3_cpu_s"),
        FigureSpec(f"{two}: agents' CPU", "CPU-s", "scaleout.two.agents_cpu_s"),
    ]
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.scaleout [--quick]`: the group alone; results/<ts>-scaleout.json
    (latest.json stays the whole suite's run)."""
    p = argparse.ArgumentParser(prog="python -m bench.scaleout",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sets, one run, 100,000 photos")
    p.add_argument("--runs", type=int, help="first-sync runs (default 3, quick 1)")
    p.add_argument("--only", choices=FIGURES, action="append",
                   help="one figure of the group (repeatable): the first syncs, the manifest "
                        "check over the large PostgreSQL catalog, or the agents on two servers")
    p.add_argument("--results-dir", type=Path,
                   default=Path(__file__).resolve().parent / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    started = time.perf_counter()
    sets = {name: datagen.ensure_set(spec) for name, spec in set_specs(quick=args.quick).items()}
    work_dir = datagen.DEFAULT_CACHE_DIR / "work-scaleout"
    errors: dict[str, str] = {}

    def attempt(what: str, action: Callable[[], None]) -> None:
        log.info("%s ...", what)
        try:
            action()
        except Exception as exc:
            errors[what] = f"{type(exc).__name__}: {exc}"
            log.exception("%s failed", what)

    trash.discard(work_dir)
    work_dir.mkdir(parents=True)
    try:
        result = measure(work_dir, sets, quick=args.quick, runs=args.runs, attempt=attempt,
                         only=args.only or FIGURES)
    finally:
        trash.discard(work_dir)
    rows = build_rows(figure_specs(sets, scaleout_shape(quick=args.quick),
                                   load.load_shape(quick=args.quick).syncing_agents),
                      result.samples)
    report_group_run("scaleout", args.quick, rows, result.samples, started, args.results_dir)
    for note in result.notes:
        print(f"\n{note}")
    for what, error in errors.items():
        print(f"\nFAILED {what}: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
