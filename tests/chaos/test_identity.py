"""Identity attacks: wrong CA, expired certificate, plaintext, a hostile TLS server name, a
revoked agent (the list is re-read without a restart), a sync-only agent calling admin RPCs,
and an agent acting as another. Each is refused with the right status; refusals of RPCs are
written to the audit log. Handshakes gRPC's core refuses never become RPCs and are not
audited: the only record of them is gRPC's own log text, which a peer can write into."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from photonic.v1 import sync_pb2, sync_pb2_grpc
from tests.chaos.hostile import exchange, sync_stub
from tests.chaos.tally import TALLY
from tests.support.daemons import ServerHandle, catalog_rows, start_server, wait_until
from tests.support.logrecords import not_records, record_fields
from tests.support.pki import TestPki
from tests.support.stored import library_files

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
    rows = catalog_rows(server, "SELECT result, detail FROM audit WHERE actor = ? "
                        "AND action = ?", (actor, action))
    return [(str(r), str(d)) for r, d in rows]


def _all_audit_rows(server: ServerHandle) -> list[str]:
    rows = catalog_rows(server, "SELECT actor, action, target, result, detail FROM audit")
    return [" ".join(str(c) for c in row) for row in rows]


@pytest.fixture
def as_laptop(server: ServerHandle, pki: TestPki) -> Iterator[Stub]:
    channel, stub = sync_stub(server.endpoint, pki.agent_cert("laptop"),
                              pki.agent_key("laptop"), pki.ca)
    yield stub
    channel.close()


@pytest.mark.parametrize("who", ["rogue_ca", "expired", "plaintext"])
def test_connections_without_a_valid_certificate_are_refused(
        who: str, server: ServerHandle, pki: TestPki) -> None:
    """A certificate from another CA (with a legitimate agent's CN), an expired certificate,
    and a plaintext connection never reach an RPC: UNAVAILABLE at the TLS handshake, and
    nothing is registered or audited in the name the rogue certificate claims."""
    if who == "plaintext":
        channel = grpc.insecure_channel(server.endpoint)
        stub = sync_pb2_grpc.PhotonicSyncStub(channel)  # type: ignore[no-untyped-call]
    else:
        cert, key = ((pki.rogue_cert, pki.rogue_key) if who == "rogue_ca"
                     else (pki.expired_cert, pki.expired_key))
        channel, stub = sync_stub(server.endpoint, cert, key, pki.ca)
    TALLY.identity_attacks += 1
    assert _register(stub) is grpc.StatusCode.UNAVAILABLE
    assert _register(stub, "laptop") is grpc.StatusCode.UNAVAILABLE
    channel.close()
    assert not _all_audit_rows(server)


# gRPC core logs a client's SNI as it came (`No match found for server name: <SNI>`), before
# any certificate is asked for. Each of these once wrote a log line or an audit row of the
# sender's choosing; an SNI is at most 255 bytes.
_FORGED_REFUSAL = ("x\nI1121 19:14:59.1 1 handshaker.cc:1] CallNextHandshakerLocked: error="
                   "Ssl handshake failed FORGED\n shutdown=0 grpc.internal.endpoint_peer_address"
                   "=ipv4:10.6.6.6:1 grpc.internal.server_credentials=1")
HOSTILE_SERVER_NAMES = [
    _FORGED_REFUSAL,
    "x\nts=2026-01-01T00:00:00.000Z level=info logger=photonic.server msg=audit "
    "caller=admin action=ResolveConflicts",
    "x\r\x1b[2Kts=2026-01-01T00:00:00.000Z level=info caller=admin action=ResolveConflicts",
]


def _hello_with_server_name(port: int, server_name: str) -> None:
    """A TLS ClientHello carrying server_name, from a client with no certificate at all."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:  # bytes skip IDNA, so the name goes out exactly as written
            with context.wrap_socket(raw, server_hostname=server_name.encode()) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass  # refused: no client certificate


def test_a_hostile_tls_server_name_forges_no_audit_row_and_no_log_line(
        server: ServerHandle, as_laptop: Stub) -> None:
    """Anyone who can connect chooses the SNI that gRPC writes into its log. Server names
    with newlines, a fake gRPC handshaker record, a fake photonic record with
    `caller=admin action=ResolveConflicts`, CR and ESC: the audit table holds none of that
    text, every line of the server's stderr is exactly one photonic record (the peer's text
    quoted and escaped inside gRPC's), none carries the peer's `caller`, and real events are
    still logged and audited."""
    rounds = 3
    for _ in range(rounds):
        for name in HOSTILE_SERVER_NAMES:
            _hello_with_server_name(server.port, name)
    TALLY.identity_attacks += rounds * len(HOSTILE_SERVER_NAMES)
    expected = rounds * len(HOSTILE_SERVER_NAMES)
    wait_until(lambda: server.daemon.log().count("No match found for server name") >= expected,
               20, message="gRPC's log of every hostile server name")
    assert _register(as_laptop) is grpc.StatusCode.OK
    assert server.daemon.terminate() == 0
    rows = _all_audit_rows(server)
    assert any(row.startswith("laptop RegisterAgent") for row in rows)
    assert not [row for row in rows if "10.6.6.6" in row or "FORGED" in row
                or "ResolveConflicts" in row or "tls.handshake" in row]
    log = server.daemon.log()
    assert not not_records(log)
    records = [record_fields(line) for line in log.splitlines()]
    assert not [r for r in records if "caller" in r or "action" in r]
    events = [r.get("event") for r in records]
    assert "server_started" in events and "server_stopped" in events
    quoting = [r for r in records if "No match found for server name" in r["msg"]]
    assert len(quoting) >= expected and {r["logger"] for r in quoting} == {"stderr"}


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
    assert _register(as_laptop) is grpc.StatusCode.OK  # as itself: then it may sync
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
    assert library_files(server) == {}
