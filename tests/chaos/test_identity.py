"""Identity attacks: wrong CA, expired certificate, plaintext, a revoked agent (the list is
re-read without a restart), a sync-only agent calling admin RPCs, and an agent acting as
another. Each is refused with the right status and written to the audit log, including the
handshakes gRPC's core refuses before any application code runs (via the server's stderr tap)."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from photonic.v1 import sync_pb2, sync_pb2_grpc
from tests.chaos.hostile import exchange, sync_stub
from tests.chaos.tally import TALLY
from tests.support.daemons import ServerHandle, start_server, wait_until
from tests.support.pki import TestPki

pytestmark = pytest.mark.chaos

Stub = sync_pb2_grpc.PhotonicSyncStub


def _register(stub: Stub, agent_id: str = "") -> grpc.StatusCode:
    try:
        stub.RegisterAgent(sync_pb2.RegisterAgentRequest(agent_id=agent_id, hostname="h"),
                           timeout=10)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _audit(server: ServerHandle, actor: str, action: str) -> list[tuple[str, str]]:
    with sqlite3.connect(server.storage / "catalog.db") as conn:
        rows = conn.execute("SELECT result, detail FROM audit WHERE actor = ? AND action = ?",
                            (actor, action)).fetchall()
    conn.close()
    return [(str(r), str(d)) for r, d in rows]


def _handshake_refusals(server: ServerHandle) -> list[tuple[str, str, str, str]]:
    """(actor, target, result, detail) of every TLS handshake refusal in the audit log."""
    with sqlite3.connect(server.storage / "catalog.db") as conn:
        rows = conn.execute("SELECT actor, target, result, detail FROM audit "
                            "WHERE action = 'tls.handshake' ORDER BY id").fetchall()
    conn.close()
    return [(str(a), str(t), str(r), str(d)) for a, t, r, d in rows]


@pytest.fixture
def as_laptop(server: ServerHandle, pki: TestPki) -> Iterator[Stub]:
    channel, stub = sync_stub(server.endpoint, pki.agent_cert("laptop"),
                              pki.agent_key("laptop"), pki.ca)
    yield stub
    channel.close()


@pytest.mark.parametrize(("who", "reason"), [
    ("rogue_ca", "certificate verify failed: unable to get local issuer certificate"),
    ("expired", "certificate verify failed: certificate has expired"),
    ("plaintext", "not TLS (plaintext or another protocol)"),
])
def test_connections_without_a_valid_certificate_are_refused(
        who: str, reason: str, server: ServerHandle, pki: TestPki) -> None:
    """A certificate from another CA (with a legitimate agent's CN), an expired certificate,
    and a plaintext connection never reach an RPC: UNAVAILABLE at the TLS handshake. The
    refusal is audited with the peer's address as actor and gRPC core's reason, never in
    the name the rogue certificate claims; the trace that reveals it stays out of the log."""
    if who == "plaintext":
        channel = grpc.insecure_channel(server.endpoint)
        stub = sync_pb2_grpc.PhotonicSyncStub(channel)  # type: ignore[no-untyped-call]
    else:
        cert, key = ((pki.rogue_cert, pki.rogue_key) if who == "rogue_ca"
                     else (pki.expired_cert, pki.expired_key))
        channel, stub = sync_stub(server.endpoint, cert, key, pki.ca)
    TALLY.identity_attacks += 1
    assert _register(stub) is grpc.StatusCode.UNAVAILABLE
    channel.close()
    rows = wait_until(lambda: _handshake_refusals(server), 20,
                      message="the refused handshake in the audit log")
    actor, target, result, detail = rows[0]
    assert (actor, result, detail) == ("tls:127.0.0.1", "refused", reason)
    assert target.startswith("127.0.0.1:")
    assert not _audit(server, "laptop", "RegisterAgent")
    assert "CallNextHandshakerLocked" not in server.daemon.log()


def test_a_flood_of_refused_handshakes_is_coalesced(server: ServerHandle) -> None:
    """Twenty plaintext connections from one host write five audit rows one by one and,
    when the server stops, one row that counts the rest, so a flood cannot fill the disk."""
    connections = 20
    for _ in range(connections):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            conn.recv(1024)  # the server's TLS alert, or EOF: the handshake is over
    TALLY.identity_attacks += connections
    wait_until(lambda: server.daemon.log().count("Handshake failed") >= connections, 20,
               message="every refused handshake in the server log")
    wait_until(lambda: len(_handshake_refusals(server)) >= 5, 20, message="five audit rows")
    assert server.daemon.terminate() == 0
    rows = _handshake_refusals(server)
    singles = [r for r in rows if r[3] == "not TLS (a plain HTTP request)"]
    summaries = [r for r in rows if "more refused handshakes" in r[3]]
    assert len(singles) == 5
    assert len(summaries) == 1 and summaries[0][0] == "tls:127.0.0.1"
    assert len(rows) == 6


def test_revocation_takes_effect_without_restart(tmp_path: Path, pki: TestPki,
                                                 daemons: list[object]) -> None:
    """Adding an agent id, then a certificate serial, to the revocation list refuses those
    agents on their next call (PERMISSION_DENIED, audited), with no server restart."""
    revoked = tmp_path / "revoked.txt"
    revoked.write_text("# nobody yet\n", encoding="utf-8")
    server = start_server(tmp_path / "server", pki,
                          extra={"security": {"revocation_list": str(revoked)}})
    daemons.append(server.daemon)
    stubs = {a: sync_stub(server.endpoint, pki.agent_cert(a), pki.agent_key(a), pki.ca)
             for a in ("laptop", "desktop")}
    assert _register(stubs["laptop"][1]) is grpc.StatusCode.OK
    assert _register(stubs["desktop"][1]) is grpc.StatusCode.OK
    serial = x509.load_pem_x509_certificate(pki.agent_cert("desktop").read_bytes()).serial_number
    revoked.write_text(f"laptop  # lost laptop\n{hex(serial)}\n", encoding="utf-8")
    TALLY.identity_attacks += 2
    assert _register(stubs["laptop"][1]) is grpc.StatusCode.PERMISSION_DENIED
    assert _register(stubs["desktop"][1]) is grpc.StatusCode.PERMISSION_DENIED
    for actor in ("laptop", "desktop"):
        assert any(r == "refused" and "revoked" in d
                   for r, d in _audit(server, actor, "RegisterAgent"))
    for channel, _ in stubs.values():
        channel.close()


def test_sync_only_agent_cannot_call_admin_rpcs(as_laptop: Stub, server: ServerHandle) -> None:
    """ResolveConflicts, another agent's status and pausing another agent need the admin
    scope: PERMISSION_DENIED, and each refusal is audited."""
    calls = {
        "ResolveConflicts": lambda: as_laptop.ResolveConflicts(sync_pb2.ResolveConflictsRequest(
            all=True, keep=sync_pb2.ResolveConflictsRequest.KEEP_INCOMING), timeout=10),
        "GetSyncStatus": lambda: as_laptop.GetSyncStatus(
            sync_pb2.GetSyncStatusRequest(agent_id="desktop"), timeout=10),
        "PauseSyncing": lambda: as_laptop.PauseSyncing(
            sync_pb2.PauseSyncingRequest(agent_id="desktop", paused=True), timeout=10),
    }
    assert _register(as_laptop) is grpc.StatusCode.OK
    for action, call in calls.items():
        TALLY.identity_attacks += 1
        with pytest.raises(grpc.RpcError) as refused:
            call()  # type: ignore[no-untyped-call]
        code = refused.value.code()
        assert code is grpc.StatusCode.PERMISSION_DENIED, action
        assert any(r == "refused" for r, _ in _audit(server, "laptop", action)), action


def test_agent_cannot_act_as_another_agent(as_laptop: Stub, server: ServerHandle) -> None:
    """Registering as, heartbeating as, or writing a manifest as another agent id is refused
    with PERMISSION_DENIED and audited; identity comes from the certificate alone."""
    TALLY.identity_attacks += 3
    assert _register(as_laptop, agent_id="desktop") is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as refused:
        as_laptop.Heartbeat(sync_pb2.HeartbeatRequest(agent_id="desktop"), timeout=10)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    manifest = sync_pb2.SyncClientMessage(manifest=sync_pb2.BatchManifest(
        agent_id="desktop", files=[sync_pb2.ManifestEntry(
            sha256="ab" * 32, size=1, watch_name="photos", relative_path="x.jpg")]))
    _, code, _ = exchange(as_laptop, [manifest])
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert _audit(server, "laptop", "RegisterAgent")
    assert _audit(server, "laptop", "Heartbeat")
    assert any(r == "refused" for r, _ in _audit(server, "laptop", "SyncBatch"))
    assert not list((server.storage / "library").rglob("*"))
