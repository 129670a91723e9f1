"""LZ4 bombs sent by a client with a valid certificate, over real mutual TLS, to a real server
daemon: every shape is refused per file, the server's resident memory stays within 50 MB of
where it started, and an honest agent is served afterwards."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from photonic.grpc_options import MAX_CHUNK_BYTES, MAX_CHUNKS_PER_RUN
from photonic.v1 import sync_pb2, sync_pb2_grpc
from tests.chaos.bombs import BOMBS, status_kib
from tests.chaos.hostile import exchange, sync_stub
from tests.chaos.scenario import final_verification, write_photos
from tests.chaos.tally import TALLY
from tests.support.daemons import ServerHandle, make_agent, sha256_of
from tests.support.pki import TestPki
from tests.support.stored import library_files, stored_digests

pytestmark = pytest.mark.chaos

Msg = sync_pb2.SyncClientMessage
ROUNDS = 4
CHUNKS_PER_MESSAGE = MAX_CHUNKS_PER_RUN  # 256 chunks of 16 KiB: one full message each
DECLARED = MAX_CHUNK_BYTES // CHUNKS_PER_MESSAGE
RSS_GROWTH_LIMIT_KIB = 50 * 1024


@pytest.fixture
def stub(server: ServerHandle, pki: TestPki) -> Iterator[sync_pb2_grpc.PhotonicSyncStub]:
    channel, s = sync_stub(server.endpoint, pki.agent_cert("intruder"),
                           pki.agent_key("intruder"), pki.ca, max_send_bytes=64 << 20)
    s.RegisterAgent(sync_pb2.RegisterAgentRequest(agent_id="intruder", hostname="bombs"))
    yield s
    channel.close()


def _round(shape: str, first: int) -> list[Msg]:
    """A manifest of CHUNKS_PER_MESSAGE new files of DECLARED bytes, then one message with a
    bomb chunk for each of them."""
    contents = [i.to_bytes(8, "big") * (DECLARED // 8) for i in range(first,
                                                                      first + CHUNKS_PER_MESSAGE)]
    shas = [hashlib.sha256(c).hexdigest() for c in contents]
    manifest = sync_pb2.BatchManifest(batch_id=f"bombs-{first}", files=[
        sync_pb2.ManifestEntry(sha256=sha, size=DECLARED, watch_name="photos",
                               relative_path=f"{shape}/{first + i}.jpg")
        for i, sha in enumerate(shas)])
    bomb = BOMBS[shape](DECLARED)
    run = sync_pb2.ChunkRun(chunks=[sync_pb2.Chunk(sha256=sha, offset=0, data=bomb, lz4=True,
                                                   raw_size=DECLARED) for sha in shas])
    return [Msg(manifest=manifest), Msg(chunks=run)]


def _server_pid(server: ServerHandle) -> int:
    assert server.daemon.proc is not None
    return server.daemon.proc.pid


@pytest.mark.parametrize("shape", sorted(BOMBS))
def test_lz4_bombs_leave_the_servers_memory_within_50_mb(
        shape: str, stub: sync_pb2_grpc.PhotonicSyncStub, server: ServerHandle,
        tmp_path: Path, pki: TestPki) -> None:
    """Four messages, each of 256 chunks declaring 16 KiB whose LZ4 data inflates to 4 MiB
    (one 4 MiB block, a header that lies about the content size, frames concatenated after
    an honest one, or 64 KiB blocks without a size): every file fails on its own (retryable)
    and the stream ends OK; the server's resident memory, now and at its peak, stays within
    50 MB of what it was before the bombs; nothing is stored; an honest agent then syncs."""
    warm_up = make_agent(tmp_path / "warm", pki, "laptop", server)
    write_photos(warm_up.watches["photos"], range(1, 4))
    warm_up.once()  # imports, pools and caches an honest sync needs are in the baseline
    pid = _server_pid(server)
    before = status_kib(pid, "VmRSS")
    messages = [m for r in range(ROUNDS) for m in _round(shape, r * CHUNKS_PER_MESSAGE)]
    replies, code, details = exchange(stub, messages, timeout_s=60)
    TALLY.hostile_messages += len(messages)
    assert code is grpc.StatusCode.OK, details
    failed = [r.failed for r in replies if r.WhichOneof("kind") == "failed"]
    assert len(failed) == ROUNDS * CHUNKS_PER_MESSAGE, [r.WhichOneof("kind") for r in replies]
    assert all(f.retryable and "LZ4" in f.reason for f in failed), failed[:3]
    after, peak = status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM")
    print(f"{shape}: server RSS {before} KiB before, {after} KiB after, peak {peak} KiB")
    assert after - before <= RSS_GROWTH_LIMIT_KIB, (before, after)
    assert peak - before <= RSS_GROWTH_LIMIT_KIB, (before, peak)
    assert not [p for p in library_files(server) if p.startswith("intruder/")]

    honest = make_agent(tmp_path / "desktop", pki, "desktop", server)
    files = write_photos(honest.watches["photos"], range(101, 106))
    summary = honest.once()
    assert summary["files_uploaded"] == len(files), summary
    final_verification(server, [warm_up, honest])
    assert {sha256_of(f) for f in files} <= stored_digests(server)
