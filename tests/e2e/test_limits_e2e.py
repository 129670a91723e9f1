"""Server limits, pausing, the event stream, the health service and the live status view,
each exercised against real daemons over mutual TLS."""

from __future__ import annotations

import queue
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from photonic.tls import channel_credentials
from photonic.v1 import sync_pb2, sync_pb2_grpc
from tests.support.daemons import (
    PYTHON,
    ServerHandle,
    _env,
    catalog_rows,
    make_agent,
    start_server,
    wait_until,
)
from tests.support.photos import make_jpeg, make_raw_like
from tests.support.pki import TestPki
from tests.support.stored import library_hashes

pytestmark = pytest.mark.e2e
TIMEOUT_S = 10.0


def _channel(server: ServerHandle, agent_id: str) -> grpc.Channel:
    pki = server.pki
    return grpc.secure_channel(server.endpoint, channel_credentials(
        pki.agent_cert(agent_id), pki.agent_key(agent_id), pki.ca))


def _stub(channel: grpc.Channel) -> sync_pb2_grpc.PhotonicSyncStub:
    return sync_pb2_grpc.PhotonicSyncStub(channel)  # type: ignore[no-untyped-call]


@pytest.fixture
def limited_server(tmp_path: Path, pki: TestPki) -> Iterator[ServerHandle]:
    handle = start_server(tmp_path / "server", pki, extra={"limits": {
        "max_agents": 2, "max_concurrent_syncs": 1, "max_transfer_size": "1MB"}})
    yield handle
    handle.daemon.terminate()


def test_file_over_max_transfer_size_is_rejected_and_the_rest_syncs(
        tmp_path: Path, limited_server: ServerHandle) -> None:
    """A file over limits.max_transfer_size is refused with a reason (kept queued as an error
    on the agent, audited on the server); the other photos of the batch still arrive."""
    agent = make_agent(tmp_path / "laptop", limited_server.pki, "laptop", limited_server)
    photos = agent.watches["photos"]
    make_jpeg(photos / "small.jpg", seed=1)
    make_raw_like(photos / "huge.NEF", seed=2, size_bytes=2_000_000)
    summary = agent.once()
    assert summary["files_uploaded"] == 1 and summary["files_rejected"] == 1
    assert set(library_hashes(limited_server, "laptop", "photos")) == {"small.jpg"}
    assert agent.status()["queue"]["errored"] == 1
    audit = catalog_rows(limited_server,
                         "SELECT action, target, detail FROM audit WHERE result = 'refused'")
    assert any("huge.NEF" in str(t) and "max_transfer_size" in str(d) for _, t, d in audit)


def test_max_agents_refuses_a_new_agent_but_not_known_ones(
        limited_server: ServerHandle) -> None:
    """With max_agents=2, a third agent's RegisterAgent is RESOURCE_EXHAUSTED; the two known
    agents can still register again."""
    for agent_id in ("laptop", "desktop", "laptop"):
        with _channel(limited_server, agent_id) as ch:
            _stub(ch).RegisterAgent(sync_pb2.RegisterAgentRequest(agent_id=agent_id),
                                    timeout=TIMEOUT_S)
    with _channel(limited_server, "archive") as ch, pytest.raises(grpc.RpcError) as caught:
        _stub(ch).RegisterAgent(sync_pb2.RegisterAgentRequest(agent_id="archive"),
                                timeout=TIMEOUT_S)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_agents" in (caught.value.details() or "")


def test_max_concurrent_syncs_refuses_a_second_stream_while_one_is_open(
        limited_server: ServerHandle) -> None:
    """With max_concurrent_syncs=1 an open SyncBatch makes a second one RESOURCE_EXHAUSTED;
    once the first ends, a new stream is accepted."""
    with _channel(limited_server, "laptop") as ch:
        stub = _stub(ch)
        stub.RegisterAgent(sync_pb2.RegisterAgentRequest(hostname="h"), timeout=TIMEOUT_S)
        outgoing: queue.Queue[sync_pb2.SyncClientMessage | None] = queue.Queue()
        first = stub.SyncBatch(iter(outgoing.get, None), timeout=30)
        entry = sync_pb2.ManifestEntry(sha256="ab" * 32, size=10, watch_name="w",
                                       relative_path="held.jpg")
        outgoing.put(sync_pb2.SyncClientMessage(manifest=sync_pb2.BatchManifest(
            batch_id="a", files=[entry])))
        decision = next(first)  # the server answered: the first stream holds the only slot
        assert decision.decision.action == sync_pb2.FileDecision.ACTION_SEND
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.SyncBatch(iter([]), timeout=TIMEOUT_S))
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        outgoing.put(None)
        assert list(first) == []
        assert list(stub.SyncBatch(iter([]), timeout=TIMEOUT_S)) == []


def test_paused_agent_is_refused_until_resumed(tmp_path: Path, server: ServerHandle) -> None:
    """PauseSyncing on itself makes the server refuse the agent's SyncBatch with
    FAILED_PRECONDITION (nothing is lost: the files stay queued); resuming lets them through."""
    agent = make_agent(tmp_path / "laptop", server.pki, "laptop", server)
    make_jpeg(agent.watches["photos"] / "a.jpg", seed=3)
    with _channel(server, "laptop") as ch:
        stub = _stub(ch)
        stub.RegisterAgent(sync_pb2.RegisterAgentRequest(agent_id="laptop"), timeout=TIMEOUT_S)
        stub.PauseSyncing(sync_pb2.PauseSyncingRequest(paused=True), timeout=TIMEOUT_S)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.SyncBatch(iter([]), timeout=TIMEOUT_S))
        assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert agent.once()["files_uploaded"] == 0
        assert agent.status()["queue"]["files"] == 1
        stub.PauseSyncing(sync_pb2.PauseSyncingRequest(paused=False), timeout=TIMEOUT_S)
    assert agent.once()["files_uploaded"] == 1


def test_admin_event_stream_sees_commits_and_health_is_serving(
        tmp_path: Path, server: ServerHandle) -> None:
    """An admin's StreamEvents receives FILE_COMMITTED for each photo an agent syncs, and the
    standard gRPC health service answers SERVING over mutual TLS."""
    events: queue.Queue[sync_pb2.Event] = queue.Queue()
    with _channel(server, "admin") as ch:
        health = health_pb2_grpc.HealthStub(ch)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_S)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stream = _stub(ch).StreamEvents(sync_pb2.StreamEventsRequest(), timeout=60)

        def pump() -> None:
            try:
                for ev in stream:
                    events.put(ev)
            except grpc.RpcError:
                pass

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        agent = make_agent(tmp_path / "laptop", server.pki, "laptop", server)
        for i in range(2):
            make_jpeg(agent.watches["photos"] / f"e{i}.jpg", seed=10 + i)
        agent.once()
        committed: set[str] = set()
        wait_until(lambda: _collect(events, committed) >= {"e0.jpg", "e1.jpg"},
                   message="FILE_COMMITTED events for both photos")
        stream.cancel()


def _collect(events: queue.Queue[sync_pb2.Event], into: set[str]) -> set[str]:
    while not events.empty():
        ev = events.get()
        if ev.kind == sync_pb2.Event.KIND_FILE_COMMITTED and ev.agent_id == "laptop":
            into.add(ev.relative_path)
    return into


def test_status_watch_draws_a_live_view(tmp_path: Path, server: ServerHandle) -> None:
    """`photonic status --watch` keeps redrawing the state, queue and watch folders."""
    agent = make_agent(tmp_path / "laptop", server.pki, "laptop", server)
    proc = subprocess.Popen([PYTHON, "-m", "photonic.cli", "status", "--config",
                             str(agent.config_path), "--watch"], stdout=subprocess.PIPE,
                            text=True, env=_env())
    try:
        assert proc.stdout is not None
        frames: list[str] = []
        while len(frames) < 3:
            line = proc.stdout.readline()
            assert line, "status --watch exited"
            if "\x1b[2J" in line:
                frames.append("")
            if frames:
                frames[-1] += line
        assert all("agent laptop" in f and "queue:" in f and "watch photos" in f
                   for f in frames[:2]), frames
    finally:
        proc.terminate()
        proc.wait(10)
