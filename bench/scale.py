"""Scale figures: an agent restart over a huge index, and manifest checks against a huge catalog.

The manifest check speaks the wire protocol directly (photonic.v1 stubs): a benchmark client
is not domain code, and it needs to time the server's answers to exactly one manifest.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.peers.photonic import PhotonicPeer
from bench.procstat import ProcUsage
from photonic import tls
from photonic.grpc_options import CHANNEL_OPTIONS
from photonic.v1 import common_pb2, sync_pb2, sync_pb2_grpc

MANIFEST_FILES = 1000
_SEED_BATCH = 50_000


@dataclass(frozen=True)
class RestartFigure:
    """Agent restart over an unchanged index of `files` files."""

    files: int
    first_sync_s: float
    restart_s: float
    restart_bytes_sent: int
    restart_usage: ProcUsage


@dataclass(frozen=True)
class ManifestFigure:
    """Server time to answer one 1,000-file manifest, against a catalog of `catalog_photos`."""

    catalog_photos: int
    new_files_ms: list[float]
    stored_files_ms: list[float]


def restart_over_index(peer: PhotonicPeer, source: Path, files: int) -> RestartFigure:
    """Syncs a huge set once (to build the index), then times a restart with nothing changed."""
    peer.start_server()
    agent = "bench-agent"
    first = peer.run_once(agent, source)
    if first.files_done < files:
        raise RuntimeError(f"index build synced {first.files_done} of {files} files")
    again = peer.run_once(agent, source)
    return RestartFigure(
        files, first.command.wall_s, again.command.wall_s, again.bytes_sent, again.command.usage
    )


def synthetic_hash(index: int) -> str:
    """The catalog's fake photo number `index`: a well-formed, deterministic SHA-256."""
    return hashlib.sha256(f"photonic-bench-catalog-{index}".encode()).hexdigest()


def seed_catalog(storage_path: Path, photos: int) -> None:
    """Fills a fresh server catalog with `photos` rows, before the server starts.

    The schema comes from the server's own migrations (opening SqliteCatalog applies them);
    rows are then bulk-inserted in large transactions, which the one-photo-per-transaction
    API would take hours to do.
    """
    from photonic.server.catalog import SqliteCatalog

    storage_path.mkdir(parents=True, exist_ok=True)
    path = storage_path / "catalog.db"
    SqliteCatalog(path).close()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        now_ms = int(time.time() * 1000)
        for start in range(0, photos, _SEED_BATCH):
            rows = _rows(start, min(photos, start + _SEED_BATCH), now_ms)
            with conn:
                conn.executemany(
                    "INSERT OR IGNORE INTO photos (sha256, size, stored_ms) VALUES (?, ?, ?)", rows
                )
    finally:
        conn.close()


def _rows(start: int, stop: int, now_ms: int) -> Iterator[tuple[str, int, int]]:
    for index in range(start, stop):
        yield synthetic_hash(index), 4_000_000 + index % 4_000_000, now_ms


def _manifest(hashes: list[str], batch: str) -> sync_pb2.SyncClientMessage:
    entries = [
        sync_pb2.ManifestEntry(
            sha256=h, size=1000, watch_name="scale", relative_path=f"{batch}/{i:05d}.jpg"
        )
        for i, h in enumerate(hashes)
    ]
    return sync_pb2.SyncClientMessage(
        manifest=sync_pb2.BatchManifest(
            batch_id=batch,
            conflict_policy=common_pb2.CONFLICT_POLICY_AUTO,
            files=entries,
        )
    )


async def _answer_ms(stub: sync_pb2_grpc.PhotonicSyncStub, hashes: list[str], batch: str) -> float:
    """Sends one manifest on a fresh stream; ms until every file has its decision."""
    call = stub.SyncBatch()
    started = time.perf_counter()
    await call.write(_manifest(hashes, batch))
    answered = 0
    while answered < len(hashes):
        message = await asyncio.wait_for(call.read(), timeout=120)
        if message is grpc.aio.EOF:
            raise RuntimeError(f"stream ended after {answered} of {len(hashes)} decisions")
        if message.WhichOneof("kind") in ("decision", "committed"):
            answered += 1
    elapsed_ms = (time.perf_counter() - started) * 1000
    call.cancel()
    return elapsed_ms


async def _manifest_checks(
    port: int, certs: Path, agent: str, catalog_photos: int, rounds: int
) -> ManifestFigure:
    creds = tls.channel_credentials(
        certs / f"{agent}.crt", certs / f"{agent}.key", certs / "ca.crt"
    )
    new_ms: list[float] = []
    stored_ms: list[float] = []
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=CHANNEL_OPTIONS) as ch:
        stub = sync_pb2_grpc.PhotonicSyncStub(ch)  # type: ignore[no-untyped-call]
        # The server serves SyncBatch only to registered agents, as a real agent would be.
        await stub.RegisterAgent(
            sync_pb2.RegisterAgentRequest(agent_id=agent, hostname="bench", watch_names=["scale"]),
            timeout=30,
        )
        for r in range(rounds):
            unknown = [
                synthetic_hash(catalog_photos + r * MANIFEST_FILES + i)
                for i in range(MANIFEST_FILES)
            ]
            new_ms.append(await _answer_ms(stub, unknown, f"new{r}"))
            # Spread over the whole catalog so the lookups are not all in one B-tree page.
            step = max(1, catalog_photos // MANIFEST_FILES)
            known = [synthetic_hash((i * step + r) % catalog_photos) for i in range(MANIFEST_FILES)]
            stored_ms.append(await _answer_ms(stub, known, f"have{r}"))
    return ManifestFigure(catalog_photos, new_ms, stored_ms)


def manifest_check(
    peer: PhotonicPeer, agent: str, catalog_photos: int, rounds: int
) -> ManifestFigure:
    """Seeds the peer's catalog, starts its server, and times `rounds` manifests of each kind."""
    seed_catalog(peer.storage, catalog_photos)
    peer.start_server()
    return asyncio.run(
        _manifest_checks(peer.server_port, peer.certs, agent, catalog_photos, rounds)
    )
