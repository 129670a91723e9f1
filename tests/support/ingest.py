"""The server's real ingest dependencies (store, catalog, library, metrics) on one storage
root, for tests that drive IngestSession directly instead of through gRPC."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from prometheus_client import CollectorRegistry

from photonic import errors
from photonic.models import (
    ChunkData,
    CommittedFile,
    ConflictPolicy,
    ContentHash,
    Decision,
    FailedFile,
    FileDecision,
    ManifestEntry,
)
from photonic.server.catalog import Catalog, SqliteCatalog
from photonic.server.events import LocalEventHub
from photonic.server.fs_sync import FilesystemSync
from photonic.server.ingest import IngestSession, Outgoing
from photonic.server.ingest_deps import IngestDeps, IngestLimits
from photonic.server.library import Library
from photonic.server.metrics import ServerMetrics
from photonic.server.shared.claims import LocalUploadClaims
from photonic.server.store import ContentStore


def real_ingest_deps(root: Path, filesystem: FilesystemSync | None = None,
                     catalog: Catalog | None = None) -> IngestDeps:
    """Everything real, no storage reserve; the caller closes deps.catalog (and filesystem).
    filesystem: group syncs are one syncfs of root's filesystem, as the server does by
    default on ext4, XFS and btrfs; None fsyncs file by file. catalog: another engine's
    (tests.support.catalogs), else root/catalog.db."""
    store = ContentStore(root)
    catalog = catalog if catalog is not None else SqliteCatalog(root / "catalog.db")

    async def audit(*_: str) -> None:
        return None

    return IngestDeps(store, catalog, Library(store, catalog, filesystem), LocalUploadClaims(),
                      ServerMetrics(CollectorRegistry()), LocalEventHub(),
                      IngestLimits(10**12, 0, True), audit)


def sha_of(content: bytes) -> ContentHash:
    return ContentHash(hashlib.sha256(content).hexdigest())


def whole_chunk(content: bytes) -> ChunkData:
    return ChunkData(sha_of(content), 0, content, False, len(content))


def chunk_of(content: bytes, start: int, end: int) -> ChunkData:
    return ChunkData(sha_of(content), start, content[start:end], False, end - start)


class IngestStream:
    """One session and everything it sent (and told on_broken), in order."""

    def __init__(self, deps: IngestDeps, agent_id: str = "laptop") -> None:
        self.sent: list[Outgoing] = []
        self.broken: list[errors.PhotonicError] = []
        self.broken_event = asyncio.Event()
        self.session = IngestSession(agent_id, deps, self._send, on_broken=self._broke)

    async def _send(self, item: Outgoing) -> None:
        self.sent.append(item)

    def _broke(self, exc: errors.PhotonicError) -> None:
        self.broken.append(exc)
        self.broken_event.set()

    def committed(self) -> set[str]:
        return {s.sha256 for s in self.sent if isinstance(s, CommittedFile)}

    def failed(self) -> list[FailedFile]:
        return [s for s in self.sent if isinstance(s, FailedFile)]

    def decisions(self) -> list[FileDecision]:
        return [s for s in self.sent if isinstance(s, FileDecision)]

    async def offer(self, contents: list[bytes], names: list[str] | None = None) -> None:
        names = names or [f"{i}.jpg" for i in range(len(contents))]
        await self.session.on_manifest(
            [ManifestEntry(sha_of(c), len(c), "photos", n) for c, n in zip(contents, names,
                                                                           strict=True)],
            ConflictPolicy.AUTO)


async def open_stream(deps: IngestDeps, contents: list[bytes],
                      agent_id: str = "laptop") -> IngestStream:
    """A session that has offered every content as photos/<i>.jpg and been told SEND."""
    stream = IngestStream(deps, agent_id)
    await stream.offer(contents)
    assert [d.action for d in stream.decisions()] == [Decision.SEND] * len(contents)
    return stream
