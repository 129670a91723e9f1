"""Scale figures (issue 16, "a million files"): the agent's first scan of a huge set, an agent
restart over its synced index, and manifest checks against a huge catalog.

The long preparations are cached under bench/.data: the synced index by scale_index (made
from a first scan, every file acknowledged through the agent's own ack path), the seeded
catalog by scale_catalog. The manifest check speaks the wire protocol directly (photonic.v1
stubs): a benchmark client is not domain code, and it times the answers to one manifest.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import grpc

from bench import datagen, trash
from bench.datagen import DataSet
from bench.peers.photonic import PhotonicPeer
from bench.procstat import ProcUsage
from bench.report import FigureSpec, Target, TargetKind
from bench.scale_catalog import ensure_catalog, install_catalog, synthetic_hash
from bench.scale_index import ScanRun, cached_index, install_index, run_probe, store_index
from photonic import tls
from photonic.config import load_agent_config
from photonic.grpc_options import CHANNEL_OPTIONS, REPLY_RUNS_METADATA_KEY
from photonic.v1 import common_pb2, sync_pb2, sync_pb2_grpc

__all__ = ["synthetic_hash"]

log = logging.getLogger("bench.scale")

AGENT = "bench-agent"
MANIFEST_FILES = 1000
_MB = 1_000_000
_Action: TypeAlias = sync_pb2.FileDecision.Action.ValueType
_HAVE = sync_pb2.FileDecision.ACTION_HAVE
_SEND = sync_pb2.FileDecision.ACTION_SEND


@dataclass(frozen=True)
class ScaleShape:
    """How big the scale figures are: full size, or quick (same shapes, small counts)."""

    files: int
    catalog_photos: int
    manifest_rounds: int


def scale_shape(*, quick: bool) -> ScaleShape:
    return ScaleShape(20_000, 100_000, 3) if quick else ScaleShape(1_000_000, 10_000_000, 5)


@dataclass(frozen=True)
class FirstScanFigure:
    """The agent's first scan of `files` files never hashed (bench.scan_probe)."""

    files: int
    scan: ScanRun

    @property
    def files_per_s(self) -> float:
        return self.files / self.scan.wall_s


@dataclass(frozen=True)
class RestartFigure:
    """`agent --once` over an unchanged, synced index of `files` files, fresh server."""

    files: int
    restart_s: float
    restart_bytes_sent: int
    restart_usage: ProcUsage
    files_sent: int = 0
    index_s: float = 0.0
    """Seconds this run spent making the synced index (0.0 when it came from the cache)."""


@dataclass(frozen=True)
class ManifestFigure:
    """Server time to answer one 1,000-file manifest, against a catalog of `catalog_photos`."""

    catalog_photos: int
    new_files_ms: list[float]
    stored_files_ms: list[float]
    seed_s: float = 0.0
    """Seconds this run spent on the catalog before copying it (~0 when it was cached)."""
    stored_sync_s: float = 0.0
    """Seconds the agent took to sync the contents the stored manifests offer again."""
    decisions: dict[str, int] = field(default_factory=dict)


# --- first scan ----------------------------------------------------------------------------

def first_scan(work_dir: Path, dataset: DataSet, *,
               cache_dir: Path = datagen.DEFAULT_CACHE_DIR) -> FirstScanFigure:
    """Times the agent's first scan of the set (a fresh state database, nothing hashed yet);
    when the set has no cached synced index yet, this scan's database becomes it."""
    run_dir = work_dir / "scale-first-scan"
    run_dir.mkdir(parents=True)
    peer = PhotonicPeer(run_dir)  # its certificates and agent config; no server is started
    try:
        config_path = peer.agent_config(AGENT, dataset.root)
        config = load_agent_config(config_path)
        log.info("first scan of %s files never hashed ...", f"{dataset.count:,}")
        scan = run_probe(config_path, expected_files=dataset.count)
        if scan.files_queued < dataset.count:
            raise RuntimeError(f"the first scan queued {scan.files_queued} of "
                               f"{dataset.count} files: {scan.summary}")
        watch = config.watches[0].name
        if cached_index(dataset, watch, cache_dir) is None:
            log.info("keeping this scan as the set's synced index ...")
            store_index(config.buffer_path / "agent.db", dataset, watch, cache_dir)
        return FirstScanFigure(dataset.count, scan)
    finally:
        peer.close()
        trash.discard(run_dir)


def first_scan_values(figure: FirstScanFigure) -> dict[str, list[float]]:
    return {
        "scale.first_scan.files_per_s": [figure.files_per_s],
        "scale.first_scan.s": [figure.scan.wall_s],
        "scale.first_scan.cpu_s": [figure.scan.usage.cpu_s],
        "scale.first_scan.rss_mb": [figure.scan.usage.peak_rss_bytes / _MB],
    }


# --- restart over the synced index ---------------------------------------------------------

def restart_over_index(peer: PhotonicPeer, source: Path, files: int, *,
                       cache_dir: Path = datagen.DEFAULT_CACHE_DIR) -> RestartFigure:
    """The set's synced index (cached; made by a first scan if missing) copied into the
    agent's fresh buffer, then a real `agent --once` against the peer's fresh server: it must
    hash nothing and send nothing. The server never saw these files, and rightly asks for
    none of them: it asks an agent to send again only contents it lost (quarantined) at one
    of that agent's paths (SqliteCatalog.wanted_from)."""
    dataset = _dataset_at(source)
    if dataset.count != files:
        raise RuntimeError(f"{source} holds {dataset.count} files, not {files}")
    config = load_agent_config(peer.agent_config(AGENT, source))
    watch = config.watches[0].name
    started = time.perf_counter()
    index = cached_index(dataset, watch, cache_dir)
    index_s = 0.0
    if index is None:
        log.info("no synced index of %s cached: a first scan makes it ...", source.name)
        run_probe(peer.agent_config(AGENT, source), expected_files=files)
        index = store_index(config.buffer_path / "agent.db", dataset, watch, cache_dir)
        index_s = time.perf_counter() - started
    install_index(index, config.buffer_path)
    peer.start_server()
    once = peer.run_once(AGENT, source)
    hashed = int(once.summary.get("files_hashed", 0))
    if hashed:
        raise RuntimeError(f"the restart hashed {hashed} files: the synced index does not "
                           f"match {source} ({once.summary})")
    return RestartFigure(files, once.command.wall_s, once.bytes_sent, once.command.usage,
                         int(once.summary.get("files_uploaded", 0)), index_s)


def _dataset_at(root: Path) -> DataSet:
    """The generated set in root, as its manifest lists it."""
    manifest = json.loads((root / "manifest.json").read_text())
    files = tuple((str(p), int(s)) for p, s in manifest["files"])
    return DataSet(manifest["name"], root, files)


def restart_values(figure: RestartFigure) -> dict[str, list[float]]:
    return {
        "scale.restart.s": [figure.restart_s],
        "scale.restart.rss_mb": [figure.restart_usage.peak_rss_bytes / _MB],
        "scale.restart.cpu_s": [figure.restart_usage.cpu_s],
        "scale.restart.bytes": [float(figure.restart_bytes_sent)],
        "scale.restart.files_sent": [float(figure.files_sent)],
    }


# --- manifest checks against a big catalog -------------------------------------------------

def stored_photo_bytes(index: int) -> bytes:
    """Content number `index` that the stored manifests offer: framed SOI ... EOI like the
    tiny photos, and never one of the catalog's synthetic rows."""
    return b"\xff\xd8\xff\xfe" + f"photonic-bench-stored-{index}".encode() + b"\xff\xd9"


def manifest_check(peer: PhotonicPeer, agent: str, catalog_photos: int, rounds: int, *,
                   cache_dir: Path = datagen.DEFAULT_CACHE_DIR) -> ManifestFigure:
    """A catalog of `catalog_photos` (cached, copied into the peer's storage), the server
    started on it, then `rounds` manifests of 1,000 unknown contents (answered SEND) and of
    1,000 stored ones (answered HAVE, which also records the new paths).

    The stored contents are real: the agent syncs them first with `agent --once`, so they
    are objects in the store, verified, and held by this agent, as a re-offered photo is."""
    started = time.perf_counter()
    cached = ensure_catalog(catalog_photos, cache_dir)
    seed_s = time.perf_counter() - started
    install_catalog(cached, peer.storage)
    return time_manifests(peer, agent, catalog_photos, rounds, seed_s)


def time_manifests(peer: PhotonicPeer, agent: str, catalog_photos: int, rounds: int,
                   seed_s: float = 0.0, settle: Callable[[], None] | None = None
                   ) -> ManifestFigure:
    """The timing half of manifest_check, on whichever catalog the peer's server is given
    (the scale-out figures: the same manifests against a PostgreSQL catalog). settle runs
    once the stored contents are synced, before any manifest is timed (the PostgreSQL
    figure's ANALYZE: bench/scaleout.py)."""
    peer.start_server()
    stored = peer.storage.parent / "stored-source"
    contents = [stored_photo_bytes(i) for i in range(rounds * MANIFEST_FILES)]
    for i, data in enumerate(contents):
        path = stored / f"s{i // MANIFEST_FILES:02d}" / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    once = peer.run_once(agent, stored)
    if once.files_done < len(contents):
        raise RuntimeError(f"synced {once.files_done} of {len(contents)} stored contents")
    known = [(hashlib.sha256(d).hexdigest(), len(d)) for d in contents]
    if settle is not None:
        settle()
    figure = asyncio.run(_manifest_checks(peer.server_port, peer.certs, agent,
                                          catalog_photos, rounds, known))
    return ManifestFigure(figure.catalog_photos, figure.new_files_ms, figure.stored_files_ms,
                          seed_s, once.command.wall_s, figure.decisions)


def _manifest(entries: list[tuple[str, int]], batch: str) -> sync_pb2.SyncClientMessage:
    files = [
        sync_pb2.ManifestEntry(sha256=sha, size=size, watch_name="scale",
                               relative_path=f"{batch}/{i:05d}.jpg")
        for i, (sha, size) in enumerate(entries)
    ]
    return sync_pb2.SyncClientMessage(manifest=sync_pb2.BatchManifest(
        batch_id=batch, conflict_policy=common_pb2.CONFLICT_POLICY_AUTO, files=files))


async def _answer_ms(stub: sync_pb2_grpc.PhotonicSyncStub, entries: list[tuple[str, int]],
                     batch: str, expected: _Action, decisions: Counter[str]) -> float:
    """Sends one manifest on a fresh stream, as the agent opens it (asking for replies in
    runs, photonic.agent.client.open_sync); ms until every file has its decision, each of
    which must be `expected` (else the figure would time something else)."""
    call = stub.SyncBatch(metadata=((REPLY_RUNS_METADATA_KEY, "1"),))
    started = time.perf_counter()
    await call.write(_manifest(entries, batch))
    answered = 0
    while answered < len(entries):
        message = await asyncio.wait_for(call.read(), timeout=120)
        if message is grpc.aio.EOF:
            raise RuntimeError(f"stream ended after {answered} of {len(entries)} decisions")
        replies = (message.replies.replies if message.WhichOneof("kind") == "replies"
                   else [message])
        for reply in replies:
            if reply.WhichOneof("kind") != "decision":
                continue
            decisions[sync_pb2.FileDecision.Action.Name(reply.decision.action)] += 1
            if reply.decision.action != expected:
                raise RuntimeError(f"{batch}: a decision was {reply.decision}, not "
                                   f"{sync_pb2.FileDecision.Action.Name(expected)}")
            answered += 1
    elapsed_ms = (time.perf_counter() - started) * 1000
    call.cancel()
    return elapsed_ms


async def _manifest_checks(port: int, certs: Path, agent: str, catalog_photos: int,
                           rounds: int, stored: list[tuple[str, int]]) -> ManifestFigure:
    creds = tls.channel_credentials(certs / f"{agent}.crt", certs / f"{agent}.key",
                                    certs / "ca.crt")
    new_ms: list[float] = []
    stored_ms: list[float] = []
    decisions: Counter[str] = Counter()
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=CHANNEL_OPTIONS) as ch:
        stub = sync_pb2_grpc.PhotonicSyncStub(ch)  # type: ignore[no-untyped-call]
        # The server serves SyncBatch only to registered agents, as a real agent would be.
        await stub.RegisterAgent(
            sync_pb2.RegisterAgentRequest(agent_id=agent, hostname="bench", watch_names=["scale"]),
            timeout=30,
        )
        for r in range(rounds):
            unknown = [(synthetic_hash(catalog_photos + r * MANIFEST_FILES + i), 1000)
                       for i in range(MANIFEST_FILES)]
            new_ms.append(await _answer_ms(stub, unknown, f"new{r}", _SEND, decisions))
            held = stored[r * MANIFEST_FILES:(r + 1) * MANIFEST_FILES]
            stored_ms.append(await _answer_ms(stub, held, f"have{r}", _HAVE, decisions))
    return ManifestFigure(catalog_photos, new_ms, stored_ms, decisions=dict(decisions))


def manifest_values(figure: ManifestFigure) -> dict[str, list[float]]:
    return {"scale.manifest.new_ms": figure.new_files_ms,
            "scale.manifest.stored_ms": figure.stored_files_ms}


# --- table rows ----------------------------------------------------------------------------

def scale_figure_specs(files: int, catalog_photos: int) -> list[FigureSpec]:
    """The scale rows with issue 16's goals: restart <= 20 s and <= 300 MB, 0 bytes sent;
    a 1,000-file manifest answered in <= 100 ms (0.1 ms a file)."""
    def at_most(value: float) -> Target:
        return Target(TargetKind.AT_MOST, value)

    index = f"{files:,}-file index"
    catalog = f"catalog of {catalog_photos:,}"
    return [
        FigureSpec(f"agent first scan of {files:,} files never hashed", "files/s",
                   "scale.first_scan.files_per_s"),
        FigureSpec(f"agent peak RSS, first scan of {files:,} files", "MB",
                   "scale.first_scan.rss_mb"),
        FigureSpec(f"agent restart, {index}, nothing changed", "s", "scale.restart.s",
                   target=at_most(20)),
        FigureSpec(f"agent peak RSS, restart over {index}", "MB", "scale.restart.rss_mb",
                   target=at_most(300)),
        FigureSpec(f"agent restart over {index}, bytes sent", "bytes", "scale.restart.bytes",
                   target=at_most(0)),
        FigureSpec(f"manifest check, 1,000 new files, {catalog}", "ms",
                   "scale.manifest.new_ms", target=at_most(100)),
        FigureSpec(f"manifest check, 1,000 stored files, {catalog}", "ms",
                   "scale.manifest.stored_ms", target=at_most(100)),
    ]
