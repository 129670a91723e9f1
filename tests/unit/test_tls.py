"""Tests for photonic.pki and .tls: issuing certificates and mutual TLS over real gRPC sockets."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from photonic.errors import InvalidInput, NotFound
from photonic.pki import SERVER_COMMON_NAME, CertificateExists, init_pki, issue_agent_cert
from photonic.tls import (
    certificate_info,
    certificate_problems,
    channel_credentials,
    check_files_readable,
    peer_certificate_serial,
    peer_common_name,
    server_credentials,
)
from photonic.v1 import sync_pb2, sync_pb2_grpc
from tests.support.pki import EXPIRED_AGENT_ID, TestPki, make_test_pki

AGENTS = ("laptop", "desktop")
CALL_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestPki]:
    yield make_test_pki(tmp_path_factory.mktemp("tls"), AGENTS)


@dataclass
class PeerRecorder(sync_pb2_grpc.PhotonicSyncServicer):
    """A servicer that only answers Heartbeat and remembers who the TLS peer was."""

    names: list[str | None] = field(default_factory=list)
    serials: list[int | None] = field(default_factory=list)

    async def Heartbeat(  # the generated servicer's name
        self, request: sync_pb2.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> sync_pb2.HeartbeatResponse:
        self.names.append(peer_common_name(context))
        self.serials.append(peer_certificate_serial(context))
        return sync_pb2.HeartbeatResponse(server_time_unix_ms=1)


async def _heartbeat(
    pki: TestPki, host: str, channel_creds: grpc.ChannelCredentials | None, recorder: PeerRecorder
) -> None:
    """Serve PhotonicSync with mTLS on host:0 and make one Heartbeat call to it."""
    server = grpc.aio.server()
    sync_pb2_grpc.add_PhotonicSyncServicer_to_server(recorder, server)  # type: ignore[no-untyped-call]
    creds = server_credentials(pki.server_cert, pki.server_key, pki.ca)
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    target = f"{host}:{port}"
    try:
        channel = (
            grpc.aio.secure_channel(target, channel_creds)
            if channel_creds is not None
            else grpc.aio.insecure_channel(target)
        )
        async with channel:
            stub = sync_pb2_grpc.PhotonicSyncStub(channel)  # type: ignore[no-untyped-call]
            await stub.Heartbeat(sync_pb2.HeartbeatRequest(), timeout=CALL_TIMEOUT_S)
    finally:
        await server.stop(grace=None)


def _call(
    pki: TestPki, creds: grpc.ChannelCredentials | None, host: str = "127.0.0.1"
) -> PeerRecorder:
    recorder = PeerRecorder()
    asyncio.run(_heartbeat(pki, host, creds, recorder))
    return recorder


def _refused_code(pki: TestPki, creds: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    recorder = PeerRecorder()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        asyncio.run(_heartbeat(pki, "127.0.0.1", creds, recorder))
    assert recorder.names == [], "the servicer must never run for a refused peer"
    code: grpc.StatusCode = caught.value.code()
    return code


# --- files on disk -------------------------------------------------------------------------


def test_keys_are_private_and_certs_not_world_writable(pki: TestPki) -> None:
    """Every key is 0600 and no certificate is writable by group or others."""
    keys = [pki.ca_key, pki.server_key, pki.agent_key("laptop"), pki.expired_key]
    certs = [pki.ca, pki.server_cert, pki.agent_cert("laptop"), pki.expired_cert]
    assert {stat.S_IMODE(k.stat().st_mode) for k in keys} == {0o600}
    for cert in certs:
        assert stat.S_IMODE(cert.stat().st_mode) & 0o022 == 0
        assert stat.S_IMODE(cert.stat().st_mode) & 0o444 == 0o444


def test_new_pki_directory_is_private(tmp_path: Path) -> None:
    """init_pki creates a missing directory readable only by its owner."""
    paths = init_pki(tmp_path / "certs")
    assert stat.S_IMODE(paths.ca_key.parent.stat().st_mode) == 0o700


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    """A second init names the existing file, says to use --force, and changes nothing."""
    paths = init_pki(tmp_path)
    before = paths.ca_key.read_bytes()
    with pytest.raises(CertificateExists, match="use --force to replace it") as caught:
        init_pki(tmp_path)
    assert str(paths.ca_cert) in str(caught.value)
    assert paths.ca_key.read_bytes() == before


def test_init_with_force_replaces_everything(tmp_path: Path) -> None:
    """force=True makes a new CA and server key, still 0600."""
    first = init_pki(tmp_path)
    old_ca, old_key = first.ca_cert.read_bytes(), first.server_key.read_bytes()
    second = init_pki(tmp_path, force=True)
    assert second.ca_cert.read_bytes() != old_ca
    assert second.server_key.read_bytes() != old_key
    assert stat.S_IMODE(second.server_key.stat().st_mode) == 0o600


def test_issue_refuses_existing_agent_then_force_replaces(pki: TestPki) -> None:
    """Issuing an existing agent id needs force; with force the agent gets a new serial."""
    old_serial = certificate_info(pki.agent_cert("desktop")).serial
    with pytest.raises(CertificateExists, match=r"desktop\.crt already exists"):
        issue_agent_cert(pki.pki_dir, "desktop")
    issue_agent_cert(pki.pki_dir, "desktop", force=True)
    assert certificate_info(pki.agent_cert("desktop")).serial != old_serial
    assert stat.S_IMODE(pki.agent_key("desktop").stat().st_mode) == 0o600


def test_issue_rejects_unsafe_agent_ids(pki: TestPki) -> None:
    """Agent ids that could not be a library directory name are refused."""
    for bad in ("../evil", "", "a b", "server"):
        with pytest.raises(InvalidInput):
            issue_agent_cert(pki.pki_dir, bad)


def test_issue_without_ca_says_how_to_make_one(tmp_path: Path) -> None:
    """Without ca.crt the error names the file and the init command."""
    with pytest.raises(NotFound, match=r"ca\.crt does not exist: run `photonic certs init"):
        issue_agent_cert(tmp_path, "laptop")


# --- certificate contents ------------------------------------------------------------------


def test_server_cert_sans_cover_local_names_host_and_extras(tmp_path: Path) -> None:
    """The server cert names localhost, loopback IPs, this host and every extra name given."""
    paths = init_pki(tmp_path, sans=["photos.example.org", "10.1.2.3"])
    cert = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(san.get_values_for_type(x509.DNSName))
    ips = set(san.get_values_for_type(x509.IPAddress))
    assert {"localhost", "photos.example.org", socket.gethostname().lower()} <= dns
    expected_ips = {ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "10.1.2.3")}
    assert expected_ips <= ips


def test_certificate_info_reports_agent_identity(pki: TestPki) -> None:
    """certificate_info shows subject CN, issuer CN and a validity window around now."""
    info = certificate_info(pki.agent_cert("laptop"))
    now = dt.datetime.now(dt.UTC)
    assert info.subject_cn == "laptop"
    assert info.issuer_cn == certificate_info(pki.ca).subject_cn
    assert info.not_before <= now <= info.not_after
    assert not info.is_ca and certificate_info(pki.ca).is_ca
    assert certificate_info(pki.server_cert).subject_cn == SERVER_COMMON_NAME


def test_check_files_accepts_a_good_set(pki: TestPki) -> None:
    """A matching, valid, CA-signed cert and 0600 key produce no problems."""
    assert check_files_readable(pki.agent_cert("laptop"), pki.agent_key("laptop"), pki.ca) == []
    assert check_files_readable(pki.server_cert, pki.server_key, pki.ca) == []


def test_check_files_names_missing_file_and_command(pki: TestPki, tmp_path: Path) -> None:
    """A missing agent cert is reported with the command that issues it."""
    missing = tmp_path / "certs" / "tablet.crt"
    problems = check_files_readable(missing, pki.agent_key("laptop"), pki.ca)
    assert problems == [
        f"{missing} does not exist: run `photonic certs issue tablet --dir {missing.parent}`"
    ]


def test_check_files_warns_on_readable_key(tmp_path: Path) -> None:
    """A key readable by others is a warning, not a fatal problem."""
    paths = init_pki(tmp_path)
    paths.server_key.chmod(0o644)
    problems = certificate_problems(paths.server_cert, paths.server_key, paths.ca_cert)
    assert [p.fatal for p in problems] == [False]
    assert str(problems[0]).startswith("warning: ")
    assert "chmod 600" in str(problems[0])


def test_check_files_reports_expired_and_foreign_certs(pki: TestPki) -> None:
    """An expired cert and a cert signed by another CA are both fatal problems."""
    expired = check_files_readable(pki.expired_cert, pki.expired_key, pki.ca)
    assert len(expired) == 1 and "expired on" in expired[0]
    assert f"photonic certs issue {EXPIRED_AGENT_ID}" in expired[0]
    foreign = check_files_readable(pki.rogue_cert, pki.rogue_key, pki.ca)
    assert len(foreign) == 1 and "was not signed by the CA" in foreign[0]


def test_check_files_reports_mismatched_key(pki: TestPki) -> None:
    """A cert paired with another agent's key is reported before gRPC fails obscurely."""
    problems = check_files_readable(pki.agent_cert("laptop"), pki.server_key, pki.ca)
    assert len(problems) == 1 and "is not the key of" in problems[0]


# --- mutual TLS over real sockets ----------------------------------------------------------


def test_agent_connects_by_ip_and_server_reads_cn_from_tls(pki: TestPki) -> None:
    """A CA-signed agent reaches 127.0.0.1:<port> with no name override; CN comes from TLS."""
    creds = channel_credentials(pki.agent_cert("laptop"), pki.agent_key("laptop"), pki.ca)
    recorder = _call(pki, creds)
    assert recorder.names == ["laptop"]
    assert recorder.serials == [certificate_info(pki.agent_cert("laptop")).serial]


def test_agent_connects_by_localhost_name(pki: TestPki) -> None:
    """The server cert's localhost SAN lets clients dial localhost:<port> too."""
    creds = channel_credentials(pki.agent_cert("laptop"), pki.agent_key("laptop"), pki.ca)
    assert _call(pki, creds, host="localhost").names == ["laptop"]


def test_rogue_ca_agent_with_legit_cn_is_refused(pki: TestPki) -> None:
    """A cert from another CA is refused at the handshake even with a known agent's CN."""
    creds = channel_credentials(pki.rogue_cert, pki.rogue_key, pki.ca)
    assert _refused_code(pki, creds) == grpc.StatusCode.UNAVAILABLE


def test_client_without_certificate_is_refused(pki: TestPki) -> None:
    """TLS without a client certificate does not get past the handshake."""
    creds = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    assert _refused_code(pki, creds) == grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_is_refused(pki: TestPki) -> None:
    """An insecure (plaintext) channel cannot talk to the mTLS server."""
    assert _refused_code(pki, None) == grpc.StatusCode.UNAVAILABLE


def test_expired_agent_certificate_is_refused(pki: TestPki) -> None:
    """An expired agent certificate signed by the right CA is refused."""
    creds = channel_credentials(pki.expired_cert, pki.expired_key, pki.ca)
    assert _refused_code(pki, creds) == grpc.StatusCode.UNAVAILABLE


def test_agent_refuses_server_from_another_ca(pki: TestPki) -> None:
    """An agent that trusts only its CA refuses a server whose cert another CA signed."""
    creds = channel_credentials(pki.agent_cert("laptop"), pki.agent_key("laptop"), pki.rogue_ca)
    assert _refused_code(pki, creds) == grpc.StatusCode.UNAVAILABLE


def test_missing_credential_file_is_a_clear_error(pki: TestPki, tmp_path: Path) -> None:
    """Building credentials from a missing key names it instead of a gRPC stack trace."""
    with pytest.raises(NotFound, match=r"ghost\.key does not exist"):
        channel_credentials(pki.agent_cert("laptop"), tmp_path / "ghost.key", pki.ca)


def test_no_peer_identity_without_tls() -> None:
    """On a plaintext server there is no verified peer, so no CN and no serial."""

    async def run() -> PeerRecorder:
        recorder = PeerRecorder()
        server = grpc.aio.server()
        sync_pb2_grpc.add_PhotonicSyncServicer_to_server(recorder, server)  # type: ignore[no-untyped-call]
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = sync_pb2_grpc.PhotonicSyncStub(channel)  # type: ignore[no-untyped-call]
                await stub.Heartbeat(sync_pb2.HeartbeatRequest(), timeout=CALL_TIMEOUT_S)
        finally:
            await server.stop(grace=None)
        return recorder

    recorder = asyncio.run(run())
    assert recorder.names == [None] and recorder.serials == [None]


def test_issue_with_corrupt_ca_key_is_a_clear_error(tmp_path: Path) -> None:
    """A damaged ca.key is reported by name rather than as a parser traceback."""
    paths = init_pki(tmp_path)
    paths.ca_key.write_bytes(b"not a key")
    with pytest.raises(InvalidInput, match=r"ca\.key is not an unencrypted PEM private key"):
        issue_agent_cert(tmp_path, "laptop")
