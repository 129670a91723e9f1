"""Every RPC passes the server's call guard: the CA's own certificate and a certificate naming
two agents are refused, revocation ends streams already open and covers the health and
reflection services, and a revocation list that goes missing refuses everyone (fail closed)."""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from photonic.grpc_options import CHANNEL_OPTIONS
from photonic.tls import channel_credentials
from photonic.v1 import sync_pb2
from tests.chaos.hostile import sync_stub
from tests.chaos.tally import TALLY
from tests.support.daemons import ServerHandle, catalog_rows, start_server, wait_until
from tests.support.pki import TestPki

pytestmark = pytest.mark.chaos


def _register(stub: object) -> grpc.StatusCode:
    try:
        stub.RegisterAgent(sync_pb2.RegisterAgentRequest(hostname="h"),  # type: ignore[attr-defined]
                           timeout=10)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _issue(pki: TestPki, tmp_path: Path, names: list[str]) -> tuple[Path, Path]:
    """A client certificate signed by the real CA whose subject has these CNs."""
    ca_cert = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, n) for n in names]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    cert_path, key_path = tmp_path / "two.crt", tmp_path / "two.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_the_ca_certificate_itself_cannot_act_as_an_agent(server: ServerHandle,
                                                          pki: TestPki) -> None:
    """The CA's certificate verifies against itself; it still names no agent: refused and
    audited, never given the default scopes."""
    channel, stub = sync_stub(server.endpoint, pki.ca, pki.ca_key, pki.ca)
    TALLY.identity_attacks += 1
    code = _register(stub)
    channel.close()
    assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE)
    assert not catalog_rows(server, "SELECT agent_id FROM agents WHERE agent_id LIKE '%ca%'")


def test_a_certificate_naming_two_agents_is_refused(server: ServerHandle, pki: TestPki,
                                                   tmp_path: Path) -> None:
    """A subject with CN=admin and CN=laptop: whichever came first used to win (admin);
    now neither is trusted."""
    cert, key = _issue(pki, tmp_path, ["admin", "laptop"])
    channel, stub = sync_stub(server.endpoint, cert, key, pki.ca)
    TALLY.identity_attacks += 1
    assert _register(stub) is grpc.StatusCode.UNAUTHENTICATED
    channel.close()
    rows = catalog_rows(server, "SELECT detail FROM audit WHERE action = 'RegisterAgent' "
                        "AND result = 'refused'")
    assert any("exactly one" in str(r[0]) for r in rows)


@pytest.fixture
def revocable(tmp_path: Path, pki: TestPki) -> Iterator[tuple[ServerHandle, Path]]:
    revoked = tmp_path / "revoked.txt"
    revoked.write_text("# nobody\n", encoding="utf-8")
    server = start_server(tmp_path / "server", pki,
                          extra={"security": {"revocation_list": str(revoked)}})
    yield server, revoked
    server.daemon.terminate()


def test_revocation_ends_open_streams_and_covers_health_and_reflection(
        revocable: tuple[ServerHandle, Path], pki: TestPki) -> None:
    """An open SyncBatch and an open StreamEvents of the laptop end with PERMISSION_DENIED
    within seconds of the laptop being added to the list; its health checks and reflection
    calls are refused too."""
    server, revoked = revocable
    cert, key = pki.agent_cert("laptop"), pki.agent_key("laptop")
    channel, stub = sync_stub(server.endpoint, cert, key, pki.ca)
    assert _register(stub) is grpc.StatusCode.OK
    ended: dict[str, grpc.StatusCode] = {}
    outbox: queue.Queue[sync_pb2.SyncClientMessage | None] = queue.Queue()

    def requests() -> Iterator[sync_pb2.SyncClientMessage]:
        while (item := outbox.get()) is not None:
            yield item

    def hold(name: str, call: object) -> None:
        try:
            for _ in call:  # type: ignore[attr-defined]
                pass
        except grpc.RpcError as exc:
            ended[name] = exc.code()

    streams = [threading.Thread(target=hold, args=("SyncBatch", stub.SyncBatch(requests())),
                                daemon=True),
               threading.Thread(target=hold, args=(
                   "StreamEvents", stub.StreamEvents(sync_pb2.StreamEventsRequest())),
                   daemon=True)]
    for thread in streams:
        thread.start()
    revoked.write_text("laptop\n", encoding="utf-8")
    TALLY.identity_attacks += 4
    wait_until(lambda: len(ended) == 2, 20, message="both open streams to end")
    outbox.put(None)
    assert ended == {"SyncBatch": grpc.StatusCode.PERMISSION_DENIED,
                     "StreamEvents": grpc.StatusCode.PERMISSION_DENIED}
    other = grpc.secure_channel(server.endpoint, channel_credentials(cert, key, pki.ca),
                                options=list(CHANNEL_OPTIONS))
    with pytest.raises(grpc.RpcError) as health:
        health_pb2_grpc.HealthStub(other).Check(  # type: ignore[no-untyped-call]
            health_pb2.HealthCheckRequest(), timeout=10)
    assert health.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as listing:
        list(reflection_pb2_grpc.ServerReflectionStub(other).ServerReflectionInfo(  # type: ignore[no-untyped-call]
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    assert listing.value.code() is grpc.StatusCode.PERMISSION_DENIED
    other.close()
    channel.close()


def test_a_missing_revocation_list_refuses_every_certificate_until_it_is_back(
        revocable: tuple[ServerHandle, Path], pki: TestPki) -> None:
    """Deleting the list must not lift every revocation: with the file gone every call is
    refused (the message says why, without the file's path); restored, calls work again."""
    server, revoked = revocable
    channel, stub = sync_stub(server.endpoint, pki.agent_cert("desktop"),
                              pki.agent_key("desktop"), pki.ca)
    assert _register(stub) is grpc.StatusCode.OK
    revoked.unlink()
    TALLY.identity_attacks += 1
    with pytest.raises(grpc.RpcError) as refused:
        stub.RegisterAgent(sync_pb2.RegisterAgentRequest(hostname="h"), timeout=10)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "revocation list is missing" in str(refused.value.details())
    assert str(revoked) not in str(refused.value.details())
    revoked.write_text("# nobody\n", encoding="utf-8")
    assert _register(stub) is grpc.StatusCode.OK
    channel.close()
