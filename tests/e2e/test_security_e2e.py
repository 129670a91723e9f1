"""End-to-end refusals: foreign or expired certificates, plaintext clients, agents writing as
another agent, and sync-scoped agents calling admin RPCs, against a real mutual-TLS server."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from photonic import wire
from photonic.models import ConflictPolicy, ContentHash, ManifestEntry
from photonic.tls import channel_credentials
from photonic.v1 import sync_pb2, sync_pb2_grpc
from tests.support.daemons import ServerHandle, catalog_rows, make_agent
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import library_files, stored_digests

pytestmark = pytest.mark.e2e

CALL_TIMEOUT_S = 10.0


def _stub(channel: grpc.Channel) -> sync_pb2_grpc.PhotonicSyncStub:
    return sync_pb2_grpc.PhotonicSyncStub(channel)  # type: ignore[no-untyped-call]


def _tls_channel(server: ServerHandle, cert: Path, key: Path) -> grpc.Channel:
    return grpc.secure_channel(server.endpoint, channel_credentials(cert, key, server.pki.ca))


def _refusal(call: Callable[[], object]) -> grpc.RpcError:
    """The RpcError the call fails with; fails the test if the call succeeds."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def _register(stub: sync_pb2_grpc.PhotonicSyncStub, agent_id: str) -> object:
    return stub.RegisterAgent(sync_pb2.RegisterAgentRequest(agent_id=agent_id, hostname="test"),
                              timeout=CALL_TIMEOUT_S)


def _audit(server: ServerHandle) -> list[tuple[str, str, str]]:
    rows = catalog_rows(server, "SELECT actor, action, result FROM audit")
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def _known_agents(server: ServerHandle) -> set[str]:
    return {str(r[0]) for r in catalog_rows(server, "SELECT agent_id FROM agents")}


@pytest.mark.parametrize("who", ["rogue CA", "expired certificate"])
def test_certificate_not_accepted_by_the_ca_fails_the_handshake(
        who: str, pki: TestPki, server: ServerHandle) -> None:
    """A client certificate from another CA (with a legitimate agent's CN) or an expired one
    never gets past the TLS handshake: UNAVAILABLE, and no agent is registered."""
    cert, key = ((pki.rogue_cert, pki.rogue_key) if who == "rogue CA"
                 else (pki.expired_cert, pki.expired_key))
    with _tls_channel(server, cert, key) as channel:
        error = _refusal(lambda: _register(_stub(channel), "laptop"))
    assert error.code() is grpc.StatusCode.UNAVAILABLE, error
    assert _known_agents(server) == set()


def test_plaintext_client_is_refused(server: ServerHandle) -> None:
    """A client without TLS cannot talk to the server at all: UNAVAILABLE."""
    with grpc.insecure_channel(server.endpoint) as channel:
        error = _refusal(lambda: _register(_stub(channel), "laptop"))
    assert error.code() is grpc.StatusCode.UNAVAILABLE, error
    assert _known_agents(server) == set()


@pytest.fixture
def laptop_stub(pki: TestPki, server: ServerHandle) -> Iterator[sync_pb2_grpc.PhotonicSyncStub]:
    """A PhotonicSync stub over mutual TLS with laptop's certificate (sync scope only)."""
    with _tls_channel(server, pki.agent_cert("laptop"), pki.agent_key("laptop")) as channel:
        yield _stub(channel)


def test_agent_cannot_register_as_another_agent(
        server: ServerHandle, laptop_stub: sync_pb2_grpc.PhotonicSyncStub) -> None:
    """RegisterAgent naming "desktop" with laptop's certificate is PERMISSION_DENIED and
    audited; registering as itself works on the same channel."""
    error = _refusal(lambda: _register(laptop_stub, "desktop"))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED, error
    assert ("laptop", "RegisterAgent", "refused") in _audit(server)
    assert "desktop" not in _known_agents(server)
    reply = _register(laptop_stub, "laptop")
    assert isinstance(reply, sync_pb2.RegisterAgentResponse) and reply.agent_id == "laptop"


def test_agent_cannot_write_into_another_agents_library(
        tmp_path: Path, server: ServerHandle,
        laptop_stub: sync_pb2_grpc.PhotonicSyncStub) -> None:
    """A SyncBatch manifest with agent_id "desktop" sent with laptop's certificate is refused
    with PERMISSION_DENIED before anything is stored, and the refusal is audited."""
    data = b"not really a photo"
    entry = ManifestEntry(sha256=ContentHash(hashlib.sha256(data).hexdigest()), size=len(data),
                          watch_name="photos", relative_path="IMG_0001.jpg")
    manifest = wire.manifest_to_wire("batch-1", "desktop", ConflictPolicy.AUTO, [entry])
    _register(laptop_stub, "laptop")  # registered as itself, as syncing requires
    call = laptop_stub.SyncBatch(iter([manifest]), timeout=CALL_TIMEOUT_S)
    error = _refusal(lambda: list(call))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED, error
    assert ("laptop", "SyncBatch", "refused") in _audit(server)
    assert library_files(server) == {}
    assert stored_digests(server) == set()


def test_sync_scoped_agent_cannot_resolve_conflicts(
        tmp_path: Path, pki: TestPki, server: ServerHandle,
        laptop_stub: sync_pb2_grpc.PhotonicSyncStub) -> None:
    """ResolveConflicts needs the admin scope: laptop (sync scope) gets PERMISSION_DENIED and
    the refusal is in the audit table; the server keeps serving laptop's uploads."""
    keep = sync_pb2.ResolveConflictsRequest.KEEP_INCOMING
    error = _refusal(lambda: laptop_stub.ResolveConflicts(
        sync_pb2.ResolveConflictsRequest(all=True, keep=keep), timeout=CALL_TIMEOUT_S))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED, error
    assert "admin" in (error.details() or ""), error
    assert ("laptop", "ResolveConflicts", "refused") in _audit(server)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    make_jpeg(agent.watches["photos"] / "IMG_0001.jpg", seed=1)
    assert agent.once()["files_uploaded"] == 1
