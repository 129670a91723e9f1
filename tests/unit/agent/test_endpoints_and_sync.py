"""Endpoints: one client per configured endpoint, sync's first-reachable rule unchanged; and
the sync service driven over its typed client seam (sync_api.SyncServerApi) by a fake."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from photonic import errors
from photonic.agent.bandwidth import TokenBucket
from photonic.agent.client import HeartbeatReply, Registration, RemoteStatus
from photonic.agent.endpoints import Endpoints
from photonic.agent.ignore import IgnoreRules
from photonic.agent.metrics import AgentMetrics
from photonic.agent.pending_report import PendingShootReport
from photonic.agent.scan_runner import ScanRunner
from photonic.agent.scanner import Scanner
from photonic.agent.signature import FileSignature
from photonic.agent.state import AgentStateMachine
from photonic.agent.statedb import AgentStateDB
from photonic.agent.statusfile import LiveStatus
from photonic.agent.sync_api import BatchOpener, BatchStream, SyncServerApi
from photonic.agent.sync_service import SyncService, SyncSettings
from photonic.agent.uploader import SyncTotals, Uploader, UploaderSettings
from photonic.models import AgentState, ConflictPolicy, ContentHash, ExifSummary
from photonic.shoots import PendingShoot


class FakeClient:
    """A server that answers readiness as told and records heartbeats."""

    def __init__(self, endpoint: str, _creds: object, agent_id: str, *,
                 reachable: bool = True) -> None:
        self.endpoint = endpoint
        self.agent_id = agent_id
        self.reachable = reachable
        self.closed = False
        self.heartbeats: list[AgentState] = []

    async def ready(self, timeout_s: float) -> None:
        if not self.reachable:
            raise errors.Transient(f"server {self.endpoint} is not reachable")

    async def close(self) -> None:
        self.closed = True

    async def register(self, watch_names: Sequence[str]) -> Registration:
        return Registration(self.agent_id, ("sync",), 1 << 20, 1 << 30, False, True)

    async def heartbeat(self, state: AgentState, queue_depth: int, bytes_pending: int,
                        missing_watches: Sequence[str],
                        pending_shoots: Sequence[PendingShoot] = ()) -> HeartbeatReply:
        self.heartbeats.append(state)
        return HeartbeatReply(False, ())

    async def status(self, agent_id: str = "") -> RemoteStatus:
        raise AssertionError("no conflicts in these tests")

    def open_sync(self, correlation_id: str | None = None) -> BatchStream:
        raise AssertionError("nothing queued in these tests")


def _pool(reachable: dict[str, bool], made: list[FakeClient]) -> Endpoints:
    def factory(endpoint: str, creds: grpc.ChannelCredentials, agent_id: str) -> FakeClient:
        client = FakeClient(endpoint, creds, agent_id, reachable=reachable[endpoint])
        made.append(client)
        return client

    return Endpoints(list(reachable), grpc.ssl_channel_credentials(), "laptop",
                     factory=factory)  # type: ignore[arg-type]


def test_connect_first_takes_the_first_reachable_in_order_and_closes_the_rest() -> None:
    """The sync rule: endpoints are tried in configured order; an unreachable one is closed
    and skipped; none reachable is Transient naming each."""
    made: list[FakeClient] = []
    pool = _pool({"a:1": False, "b:2": True, "c:3": True}, made)
    client = asyncio.run(pool.connect_first())
    assert client.endpoint == "b:2"
    assert [(c.endpoint, c.closed) for c in made] == [("a:1", True), ("b:2", False)]
    with pytest.raises(errors.Transient, match=r"a:1.*b:2"):
        asyncio.run(_pool({"a:1": False, "b:2": False}, []).connect_first())


def test_clients_gives_one_client_per_endpoint_with_the_shared_identity() -> None:
    """For the work service: every configured server, in order, with the one agent id."""
    made: list[FakeClient] = []
    clients = _pool({"a:1": False, "b:2": True}, made).clients()
    assert [(c.endpoint, c.agent_id) for c in clients] == [("a:1", "laptop"), ("b:2", "laptop")]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[AgentStateDB]:
    state = AgentStateDB(tmp_path / "agent.db")
    yield state
    state.close()


class FakeConnector:
    def __init__(self, clients: list[FakeClient]) -> None:
        self._clients = clients
        self.endpoints = tuple(c.endpoint for c in clients)

    async def connect_first(self) -> SyncServerApi:
        for client in self._clients:
            if client.reachable:
                return client
        raise errors.Transient("none")


def test_a_once_run_over_the_seam_heartbeats_and_ends(db: AgentStateDB, tmp_path: Path) -> None:
    """With nothing to sync, `--once` connects to the first reachable server, reports its
    state once, closes the connection and ends; the live status names that server."""
    metrics = AgentMetrics(None, "laptop")
    queued = asyncio.Event()
    scans = ScanRunner(Scanner(db, [], IgnoreRules(()), buffer_path=tmp_path,
                               max_buffer_size_bytes=1 << 30), db, [], metrics, "laptop", queued)
    uploader = Uploader(db, UploaderSettings(
        agent_id="laptop", chunk_size_bytes=1 << 20, compression="never",
        compression_min_saving=0.0, parallel_transfers=1, batch_size=10, retry_attempts=1,
        conflict_policy=ConflictPolicy.AUTO, shoot_gap_s=60.0, buffer_path=tmp_path),
        TokenBucket(0), metrics, scans.rescan)
    down = FakeClient("a:1", None, "laptop", reachable=False)
    up = FakeClient("b:2", None, "laptop")
    status = LiveStatus(agent_id="laptop")
    service = SyncService(
        SyncSettings("laptop", (), retry_attempts=1, once=True),
        connector=FakeConnector([down, up]), uploader=uploader, db=db,
        sm=AgentStateMachine("laptop", metrics), metrics=metrics, status=status,
        scans=scans, queued=queued, pending=PendingShootReport(db, shoot_gap_s=60.0))
    asyncio.run(asyncio.wait_for(service.run(asyncio.Event()), 10))
    assert up.heartbeats == [AgentState.MONITORING] and up.closed
    assert status.endpoint == "b:2"


class HeartbeatsUntilTwo(FakeClient):
    """Lets a drain end only after it saw two heartbeats sent while it ran."""

    def __init__(self) -> None:
        super().__init__("a:1", None, "laptop")
        self.two_during_sync = asyncio.Event()

    async def heartbeat(self, state: AgentState, queue_depth: int, bytes_pending: int,
                        missing_watches: Sequence[str],
                        pending_shoots: Sequence[PendingShoot] = ()) -> HeartbeatReply:
        reply = await super().heartbeat(state, queue_depth, bytes_pending, missing_watches,
                                        pending_shoots)
        if self.heartbeats.count(AgentState.SYNCING) >= 2:
            self.two_during_sync.set()
        return reply


class DrainUntilHeartbeats(Uploader):
    """A drain as long as a card's: it ends (the file acknowledged) once the server has heard
    from the agent twice while it ran."""

    def __init__(self, db: AgentStateDB, client: HeartbeatsUntilTwo, settings: UploaderSettings,
                 metrics: AgentMetrics, scans: ScanRunner) -> None:
        super().__init__(db, settings, TokenBucket(0), metrics, scans.rescan)
        self._db_ = db
        self._client = client

    async def drain(self, client: BatchOpener) -> SyncTotals:
        await asyncio.wait_for(self._client.two_during_sync.wait(), 10)
        for f in self._db_.pending(10):
            self._db_.mark_synced(f.id, f.sha256)
        return self.totals


def test_a_long_drain_keeps_heartbeating_with_the_syncing_state(
        db: AgentStateDB, tmp_path: Path) -> None:
    """The server hears from an agent every interval while it syncs, not only between
    drains: a sync of hours must not look like a lost agent, nor hide what is pending."""
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"a photo")
    db.record_file("photos", "a.jpg", signature=FileSignature(7, 1, 1, 1, 0),
                   sha256=ContentHash("ab" * 32), exif=ExifSummary(), source_path=photo)
    metrics = AgentMetrics(None, "laptop")
    queued = asyncio.Event()
    scans = ScanRunner(Scanner(db, [], IgnoreRules(()), buffer_path=tmp_path,
                               max_buffer_size_bytes=1 << 30), db, [], metrics, "laptop", queued)
    client = HeartbeatsUntilTwo()
    uploader = DrainUntilHeartbeats(
        db, client, UploaderSettings(
            agent_id="laptop", chunk_size_bytes=1 << 20, compression="never",
            compression_min_saving=0.0, parallel_transfers=1, batch_size=10,
            retry_attempts=1, conflict_policy=ConflictPolicy.AUTO, shoot_gap_s=60.0,
            buffer_path=tmp_path), metrics, scans)
    service = SyncService(
        SyncSettings("laptop", (), retry_attempts=1, once=True, heartbeat_interval_s=0.05),
        connector=FakeConnector([client]), uploader=uploader, db=db,
        sm=AgentStateMachine("laptop", metrics), metrics=metrics, status=LiveStatus(
            agent_id="laptop"), scans=scans, queued=queued,
        pending=PendingShootReport(db, shoot_gap_s=60.0))
    asyncio.run(asyncio.wait_for(service.run(asyncio.Event()), 20))
    assert client.heartbeats[:2] == [AgentState.SYNCING, AgentState.SYNCING]
    assert client.heartbeats[-1] is AgentState.MONITORING and client.closed
