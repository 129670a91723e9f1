"""The server's composition root: wires catalog, store, library, auth, RPC and HTTP, and owns
their start and graceful stop (stores close last)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, generate_latest

from photonic import __version__
from photonic.config import ServerConfig, ServerRole
from photonic.errors import PhotonicError
from photonic.grpc_options import server_options
from photonic.logfmt import event
from photonic.media.safezip import ZipLimits
from photonic.server.agents_service import AgentsService
from photonic.server.auth import Authorizer, RevocationList
from photonic.server.fs_sync import FilesystemSync, choose_sync
from photonic.server.guard import CallGuard
from photonic.server.health import ServerHealth, watch_health
from photonic.server.ingest_deps import IngestDeps, IngestLimits
from photonic.server.jobs.backends import SharedDispatch, open_job_queue, shared_dispatch
from photonic.server.jobs.dispatch import Dispatcher
from photonic.server.jobs.inputs import InputResolver
from photonic.server.jobs.results import ResultStore
from photonic.server.jobs.service import JobsService
from photonic.server.jobs.timeouts import TimeoutPolicy
from photonic.server.jobs.web_intake import WebUploadLimits, WebUploads
from photonic.server.jobs.zip_intake import IntakeLimits, UploadIntake
from photonic.server.library import Library
from photonic.server.media.service import MediaService
from photonic.server.metrics import ScrapeReadings, ServerMetrics
from photonic.server.receive_rates import ReceiveRates
from photonic.server.replication.service import ReplicationService
from photonic.server.rpc_jobs import JobsRpc
from photonic.server.rpc_sync import SyncService
from photonic.server.safety import SafetyView
from photonic.server.scrub_parts import ARCHIVE_SERVICE, ScrubParts
from photonic.server.shared.claims import UploadClaims
from photonic.server.shared_state import make_shared_state
from photonic.server.storage.catalogs import job_queue_url, open_catalog
from photonic.server.storage.open import open_objects
from photonic.server.store import ContentStore
from photonic.server.sync_limits import SyncBudgets
from photonic.server.topology import ServerNode, Topology
from photonic.tls import certificate_info, server_credentials
from photonic.v1 import jobs_pb2, jobs_pb2_grpc, sync_pb2, sync_pb2_grpc
from photonic.web.cert_access import CertificateGate
from photonic.web.overview_routes import Overview
from photonic.web.page import Page
from photonic.web.server import WebServer, build_app
from photonic.web.site import web_ssl_context

log = logging.getLogger("photonic.server")

IO_THREADS = 32
SHOOT_GAP_MS = 2 * 3600 * 1000
"""A `--shoot` submit takes the photos of a folder within this gap of each other (the
agent's default `sync.shoot_gap`)."""


class ServerApp:
    def __init__(self, config: ServerConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.registry = registry or CollectorRegistry()
        self.metrics = ServerMetrics(self.registry)
        self.store = ContentStore(config.storage_path)
        self.store.recover()
        # Opened before anything is stored: syncfs reports only errors after the opening.
        self.sync_choice = choose_sync(config.storage_path, config.sync_method)
        self._filesystem = (FilesystemSync(config.storage_path)
                            if self.sync_choice.filesystem_wide else None)
        self.catalog = open_catalog(config.catalog)
        self.objects = open_objects(config.objects, self.store, self.catalog)
        # Several servers on one PostgreSQL catalog share upload claims, the library lock
        # and the event hub there; the embedded catalog keeps them in this process.
        self.shared = make_shared_state(
            config.catalog.url if config.catalog.backend == "postgresql" else None)
        self.library = Library(self.objects.tree, self.catalog,
                               self._filesystem if self.objects.local else None,
                               lock=self.shared.library_lock)
        self._queue_url = job_queue_url(config.catalog, config.jobs.queue_url)
        self.job_queue = open_job_queue(self._queue_url, config.storage_path)
        self._shared_dispatch: SharedDispatch | None = None
        self.jobs: JobsService | None = None
        self.events = self.shared.events
        revocations = RevocationList(config.security.revocation_list_path)
        self.auth = Authorizer(
            config.agent_scopes, config.default_scopes, self.catalog, self.metrics,
            room_for_audit=lambda: self.store.free_bytes() >= config.min_free_bytes,
            archive=config.replication.role is ServerRole.ARCHIVE)
        self.replication = ReplicationService(config, self.store, self.events, self.registry)
        self.guard = CallGuard(revocations, self.auth.refuse)
        self.web_certs = CertificateGate(self.auth.scopes_of, revocations, self.auth.audit)
        self.receive_rates = ReceiveRates()
        self.metrics.bytes_received.tap(self.receive_rates.received)
        self.agents = AgentsService(self.catalog, self.library, self.events, self.metrics,
                                    self.auth.audit, max_agents=config.max_agents,
                                    rates=self.receive_rates)
        self._grpc: grpc.aio.Server | None = None
        self._http: WebServer | None = None
        self._health = health.aio.HealthServicer()
        self.scrub = ScrubParts(config, self.store, self.catalog, self.library, self.events,
                                self.registry, self.auth.audit)
        self.health = ServerHealth(self.catalog, self.job_queue, config.storage_path,
                                   self.store.free_bytes, config.min_free_bytes,
                                   scrub=self.scrub.status)
        self.scrape = ScrapeReadings(self.metrics, self.job_queue,
                                     self.catalog.open_conflict_count, self.store.free_bytes)
        self._health_task: asyncio.Task[None] | None = None
        self._health_names: tuple[str, ...] = ()
        self.grpc_port = 0
        self.http_port = 0

    async def start(self) -> None:
        # fsyncs block a thread each; the default pool (cores + 4) would let them starve the
        # chunk writes of other streams.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="photonic-io"))
        sec = self.config.security  # refused before anything listens: no HTTPS beyond loopback
        web_tls = (web_ssl_context(self.config.web_ui_bind, sec.cert_path, sec.key_path,
                                   sec.ca_path)
                   if self.config.web_ui_port else None)
        await self.shared.start()
        claims = self.shared.claims
        deps = IngestDeps(
            store=self.store, catalog=self.catalog, library=self.library,
            claims=claims, metrics=self.metrics, events=self.events,
            limits=IngestLimits(self.config.max_transfer_size_bytes,
                                self.config.min_free_bytes, self.config.deduplication),
            audit=self.auth.audit, blob_store=self.objects.blobs)
        options = server_options(self.config.max_connection_age_s,
                                 self.config.max_connection_age_grace_s)
        server = grpc.aio.server(options=options, interceptors=[self.guard])
        sync_pb2_grpc.add_PhotonicSyncServicer_to_server(SyncService(  # type: ignore[no-untyped-call]
            self.auth, self.agents, self.catalog, deps, self.metrics, self._sync_budgets(),
            self.config.max_transfer_size_bytes, copies=self.replication), server)
        self.jobs = self._jobs_service(claims)
        intake = self._upload_intake(self.jobs, claims)
        jobs_pb2_grpc.add_PhotonicJobsServicer_to_server(  # type: ignore[no-untyped-call]
            JobsRpc(self.auth, self.jobs, intake), server)
        self.scrub.add_servicer(server, self.auth)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (sync_pb2.DESCRIPTOR.services_by_name["PhotonicSync"].full_name,
                 jobs_pb2.DESCRIPTOR.services_by_name["PhotonicJobs"].full_name,
                 health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                 ARCHIVE_SERVICE, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
        sec = self.config.security
        try:
            self.grpc_port = server.add_secure_port(self.config.bind_address, server_credentials(
                sec.cert_path, sec.key_path, sec.ca_path))
        except RuntimeError as exc:  # gRPC says no more than "Failed to bind"
            raise PhotonicError(f"cannot listen on {self.config.bind_address}: the port is in "
                                "use (another server?) or the address is not this "
                                "machine's") from exc
        await self.jobs.start()
        self._shared_dispatch = shared_dispatch(self._queue_url, self.job_queue,
                                                self.jobs)
        if self._shared_dispatch is not None:  # other servers' jobs wake this dispatcher
            await self._shared_dispatch.start()
        await server.start()
        self._grpc = server
        self.guard.start()
        self._health_names = ("", *names[:2])
        await self._set_serving(True)
        self._health_task = asyncio.create_task(watch_health(self.health, self._set_serving))
        await self.scrub.start()
        self.replication.start()
        if self.config.web_ui_port:
            self._http = WebServer(build_app(
                health=self._healthz, metrics=self._metrics, agents=self.agents, jobs=self.jobs,
                overview=self._overview(self.jobs),
                web_clients=self.metrics.web_clients, certs=self.web_certs,
                catalog=self.catalog, events=self.events, secure=web_tls is not None,
                media=MediaService(self.objects.blobs, self.catalog, self.job_queue,
                                   self.config.storage_path,
                                   copies=self.replication.copies_of),
                replication=self.replication,
                webdav_audit=self.auth.audit if self.config.webdav else None,
                uploads=WebUploads(intake, WebUploadLimits(
                    self.config.jobs.web_upload_max_bytes,
                    self.config.jobs.web_upload_max_files))), web_tls)
            self.http_port = await self._http.start(self.config.web_ui_bind,
                                                    self.config.web_ui_port)
        event(log, "server_started", bind=self.config.bind_address, grpc_port=self.grpc_port,
              http_port=self.http_port, storage=str(self.config.storage_path))
        event(log, "store_sync",
              method="filesystem" if self.sync_choice.filesystem_wide else "per-file",
              reason=self.sync_choice.reason)

    def _jobs_service(self, claims: UploadClaims) -> JobsService:
        jc = self.config.jobs
        queue = self.job_queue
        policy = TimeoutPolicy(jc.timeout_floor_s, jc.timeout_ceiling_s, jc.timeout_p95_factor,
                               jc.timeout_per_megabyte_s, jc.timeout_per_megapixel_s)

        def dispatcher_of(service: JobsService) -> Dispatcher:
            return Dispatcher(queue, self.catalog.held_by, policy,
                              heartbeat_ms=int(jc.heartbeat_s * 1000),
                              lease_ms=int(jc.lease_s * 1000), changed=service.changed,
                              waited=self.metrics.job_dispatch_latency.observe,
                              expired=self.metrics.count_lease_expiries)

        return JobsService(
            queue, dispatcher_of,
            InputResolver(self.catalog, max_inputs=jc.max_batch_children,
                          shoot_gap_ms=SHOOT_GAP_MS),
            ResultStore(self.objects.blobs, self.library, claims,
                        self.config.max_transfer_size_bytes),
            self.events, self.metrics, self.auth.audit, max_attempts=jc.max_attempts,
            cancel_grace_s=jc.cancel_grace_s)

    def _upload_intake(self, jobs: JobsService, claims: UploadClaims) -> UploadIntake:
        """The one intake of uploaded photos and ZIPs, for SubmitZip and the web page."""
        jc = self.config.jobs
        limits = ZipLimits(jc.max_zip_entries, jc.max_zip_uncompressed_bytes, jc.max_zip_ratio,
                           self.config.max_transfer_size_bytes)
        return UploadIntake(jobs, self.store, self.library, claims, self.auth.audit,
                            IntakeLimits(limits, jc.max_zip_bytes, jc.max_batch_children),
                            blobs=self.objects.blobs)

    def _overview(self, jobs: JobsService) -> Overview:
        """Safety by shoot and the topology, for the web API: this server is named by its
        certificate's subject, as agents see it."""
        this = ServerNode(certificate_info(self.config.security.cert_path).subject_cn,
                          self.config.bind_address, __version__)
        return Overview(SafetyView(self.catalog, self.job_queue, shoot_gap_ms=SHOOT_GAP_MS,
                                   copies=self.replication.copies_of),
                        Topology(this, self.catalog, jobs.dispatcher.snapshot))

    def _sync_budgets(self) -> SyncBudgets:
        c = self.config
        return SyncBudgets(c.max_concurrent_syncs, c.max_syncs_per_agent,
                           c.max_stream_memory_bytes, c.max_sync_memory_bytes,
                           c.sync_idle_timeout_s)

    async def _set_serving(self, ok: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if ok
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in self._health_names:
            await self._health.set(name, status)

    async def _healthz(self) -> Page:
        report = await self.health.report()
        return Page.json(report.as_json(), 200 if report.ok else 503)

    async def _metrics(self) -> Page:
        await self.scrape.refresh()
        return Page(200, generate_latest(self.registry),
                    "text/plain; version=0.0.4; charset=utf-8")

    async def stop(self, grace_s: float = 10.0) -> None:
        """Drains in-flight streams for grace_s, then closes the stores last."""
        if self._health_task is not None:
            self._health_task.cancel()
        await self._health.enter_graceful_shutdown()
        if self._shared_dispatch is not None:
            await self._shared_dispatch.stop()
        if self.jobs is not None:
            await self.jobs.stop()  # ends the Work streams, so the drain below is quick
        if self._http is not None:
            await self._http.stop()
        if self._grpc is not None:
            await self._grpc.stop(grace_s)
        await self.guard.stop()
        await self.scrub.stop()
        await self.replication.stop()
        await self.shared.stop()
        self.catalog.close()
        self.job_queue.close()
        if self._filesystem is not None:
            self._filesystem.close()
        event(log, "server_stopped")


async def run_server(config: ServerConfig, stop: asyncio.Event) -> None:
    app = ServerApp(config)
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()
