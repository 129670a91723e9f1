"""The scrub and archive parts of a server, built from its config: the PhotonicArchive
servicer every server runs, and the background scrub with its repairs from replicas. One
object, so the composition root (app.py) wires them in three calls."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from prometheus_client import CollectorRegistry

from photonic.config import ServerConfig
from photonic.server.archive_client import repair_sources
from photonic.server.archive_rpc import ArchiveRpc
from photonic.server.archive_service import ArchiveReader
from photonic.server.auth import Authorizer
from photonic.server.catalog import Catalog
from photonic.server.events import EventHub
from photonic.server.library import Library
from photonic.server.repair import ObjectRepairer, ReplicaFetcher
from photonic.server.scrub_service import Audit, ScrubMetrics, ScrubService, ScrubWalk
from photonic.server.storage.catalogs import open_scrub_tables
from photonic.server.store import ContentStore
from photonic.server.verification import ObjectVerifier
from photonic.v1 import archive_pb2, archive_pb2_grpc

ARCHIVE_SERVICE = archive_pb2.DESCRIPTOR.services_by_name["PhotonicArchive"].full_name


class ScrubParts:
    def __init__(self, config: ServerConfig, store: ContentStore, catalog: Catalog,
                 library: Library, events: EventHub, registry: CollectorRegistry,
                 audit: Audit) -> None:
        self._config = config
        self._store = store
        self._catalog = catalog
        self._library = library
        self._events = events
        self._audit = audit
        self.tables = open_scrub_tables(config.storage_path, config.catalog, catalog)
        self.reader = ArchiveReader(store, self.tables)
        self.metrics = ScrubMetrics(registry)
        self.service: ScrubService | None = None

    def add_servicer(self, server: grpc.aio.Server, auth: Authorizer) -> None:
        archive_pb2_grpc.add_PhotonicArchiveServicer_to_server(  # type: ignore[no-untyped-call]
            ArchiveRpc(auth, self.reader), server)

    async def start(self) -> None:
        """Starts the background scrub unless storage.scrub_interval is 0. The replicas are
        dialed here, on the running loop."""
        sc = self._config.scrub
        if sc.interval_s <= 0:
            return
        repairer = ObjectRepairer(ReplicaFetcher(self._store, repair_sources(self._config)),
                                  self._store, self._catalog, self._library)
        walk = ScrubWalk(self.tables, ObjectVerifier(self._store, self._catalog),
                         self._catalog, sc.rate_bytes_per_s)
        self.service = ScrubService(walk, self.tables, repairer, self.metrics, self._events,
                                    self._audit, interval_s=sc.interval_s)
        await self.service.start()

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()
        self.tables.close()

    def status(self) -> Mapping[str, object]:
        """For /healthz (blocking)."""
        if self.service is None:
            return {"enabled": False, "unrepaired": self.tables.unrepaired_count()}
        return {"enabled": True, **self.service.status()}
