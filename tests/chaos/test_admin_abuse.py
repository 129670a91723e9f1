"""A client with a valid certificate abusing the sync service's bookkeeping: lifting an admin's
pause, syncing without registering, pausing an agent that does not exist, and growing the
catalog through long strings and endless refusals. Each is refused or bounded."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from photonic.v1 import sync_pb2, sync_pb2_grpc
from tests.chaos.hostile import sync_stub
from tests.chaos.tally import TALLY
from tests.support.daemons import ServerHandle, catalog_rows, free_port, start_server
from tests.support.pki import TestPki
from tests.support.stored import catalog_size_bytes

pytestmark = pytest.mark.chaos

Stub = sync_pb2_grpc.PhotonicSyncStub


def _code(call: object) -> grpc.StatusCode:
    try:
        if hasattr(call, "__next__"):
            for _ in call:  # type: ignore[attr-defined]
                pass
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _call(fn: object, request: object) -> grpc.StatusCode:
    try:
        fn(request, timeout=10)  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.fixture
def stubs(server: ServerHandle, pki: TestPki) -> Iterator[dict[str, Stub]]:
    made = {a: sync_stub(server.endpoint, pki.agent_cert(a), pki.agent_key(a), pki.ca)
            for a in ("laptop", "admin", "worker")}
    yield {a: stub for a, (_channel, stub) in made.items()}
    for channel, _stub in made.values():
        channel.close()


def _register(stub: Stub) -> None:
    stub.RegisterAgent(sync_pb2.RegisterAgentRequest(hostname="h"), timeout=10)


def test_an_agent_cannot_lift_an_admins_pause(server: ServerHandle,
                                              stubs: dict[str, Stub]) -> None:
    """The admin pauses the laptop; the laptop's own "resume" does not lift it: its sync
    streams are still refused, and the audit names who did what to whom."""
    _register(stubs["laptop"])
    _register(stubs["admin"])
    stubs["admin"].PauseSyncing(sync_pb2.PauseSyncingRequest(agent_id="laptop", paused=True),
                                timeout=10)
    reply = stubs["laptop"].PauseSyncing(sync_pb2.PauseSyncingRequest(paused=False), timeout=10)
    TALLY.identity_attacks += 1
    assert reply.paused is True
    assert _code(stubs["laptop"].SyncBatch(iter([]))) is grpc.StatusCode.FAILED_PRECONDITION
    rows = catalog_rows(server, "SELECT actor, target, detail FROM audit "
                        "WHERE action = 'PauseSyncing' ORDER BY id")
    assert rows == [("admin", "laptop", "paused by admin"),
                    ("laptop", "laptop", "resumed by agent")]
    stubs["admin"].PauseSyncing(sync_pb2.PauseSyncingRequest(agent_id="laptop", paused=False),
                                timeout=10)
    assert _code(stubs["laptop"].SyncBatch(iter([]))) is grpc.StatusCode.OK


def test_syncing_needs_registration_and_pausing_needs_an_agent(
        stubs: dict[str, Stub]) -> None:
    """A certificate that never registered (so never counted against max_agents) cannot
    open a sync stream or heartbeat; an admin pausing an unknown agent is told so."""
    TALLY.identity_attacks += 3
    assert _code(stubs["worker"].SyncBatch(iter([]))) is grpc.StatusCode.FAILED_PRECONDITION
    assert _call(stubs["worker"].Heartbeat,
                 sync_pb2.HeartbeatRequest()) is grpc.StatusCode.FAILED_PRECONDITION
    _register(stubs["admin"])
    assert _call(stubs["admin"].PauseSyncing, sync_pb2.PauseSyncingRequest(
        agent_id="nobody", paused=True)) is grpc.StatusCode.NOT_FOUND


def test_long_strings_and_endless_refusals_do_not_grow_the_catalog(
        tmp_path: Path, pki: TestPki, daemons: list[object]) -> None:
    """20 registrations with a 1 MiB hostname are refused (INVALID_ARGUMENT) and 300 refused
    calls from one caller write at most its audit budget; the rest are counted in a metric.
    The catalog grows by well under a megabyte."""
    root = tmp_path
    http_port = free_port()
    server = start_server(root / "server", pki, extra={"server": {"web_ui_port": http_port}})
    daemons.append(server.daemon)
    channel, laptop = sync_stub(server.endpoint, pki.agent_cert("laptop"),
                                pki.agent_key("laptop"), pki.ca)
    before = catalog_size_bytes(server)
    huge = "h" * (1 << 20)
    for _ in range(20):
        assert _call(laptop.RegisterAgent, sync_pb2.RegisterAgentRequest(
            hostname=huge)) is grpc.StatusCode.INVALID_ARGUMENT
    for _ in range(300):  # a sync-only agent asking for an admin call, again and again
        assert _call(laptop.ResolveConflicts, sync_pb2.ResolveConflictsRequest(
            all=True, keep=sync_pb2.ResolveConflictsRequest.KEEP_INCOMING)
        ) is grpc.StatusCode.PERMISSION_DENIED
    TALLY.hostile_messages += 320
    channel.close()
    grown = catalog_size_bytes(server) - before
    assert grown < 512 * 1024, grown
    (count,) = catalog_rows(server, "SELECT COUNT(*) FROM audit WHERE actor = 'laptop'")[0]
    assert count <= 100
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert 'photonic_server_audit_rows_dropped_total{reason="rate"}' in metrics

