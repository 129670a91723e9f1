"""Hostile clients with a real certificate: malformed and adversarial SyncBatch streams. Each
is refused (a FailedFile, a REJECT or a stream error with the right status), nothing wrong is
ever stored, refusals of paths are audited, and the server keeps serving honest agents."""

from __future__ import annotations

import asyncio
import hashlib
import queue
import resource
from collections.abc import Iterator
from pathlib import Path

import grpc
import lz4.frame
import pytest

from photonic import wire
from photonic.grpc_options import (
    CHANNEL_OPTIONS,
    MAX_CHUNK_BYTES,
    MAX_CHUNKS_PER_RUN,
    REPLY_RUNS_METADATA_KEY,
)
from photonic.tls import channel_credentials
from photonic.v1 import sync_pb2, sync_pb2_grpc
from tests.chaos.hostile import exchange, sync_stub
from tests.chaos.scenario import final_verification, write_photos
from tests.chaos.tally import TALLY
from tests.support.daemons import (
    ServerHandle,
    catalog_rows,
    make_agent,
    sha256_of,
    start_server,
)
from tests.support.pki import TestPki
from tests.support.stored import (
    library_files,
    object_bytes,
    quarantined,
    received_bytes,
    stored_digests,
    upload_leftovers,
)

pytestmark = pytest.mark.chaos

Msg = sync_pb2.SyncClientMessage


def _manifest(*entries: sync_pb2.ManifestEntry, agent_id: str = "") -> Msg:
    return Msg(manifest=sync_pb2.BatchManifest(batch_id="hostile", agent_id=agent_id,
                                               files=list(entries)))


def _entry(data: bytes, rel: str, *, size: int | None = None, sha: str | None = None,
           watch: str = "photos") -> sync_pb2.ManifestEntry:
    return sync_pb2.ManifestEntry(sha256=sha or hashlib.sha256(data).hexdigest(),
                                  size=len(data) if size is None else size,
                                  watch_name=watch, relative_path=rel)


def _chunk(sha: str, offset: int, data: bytes, *, raw_size: int | None = None,
           lz4: bool = False) -> Msg:
    return Msg(chunk=sync_pb2.Chunk(sha256=sha, offset=offset, data=data, lz4=lz4,
                                    raw_size=len(data) if raw_size is None else raw_size))


@pytest.fixture
def stub(server: ServerHandle, pki: TestPki) -> Iterator[sync_pb2_grpc.PhotonicSyncStub]:
    channel, s = sync_stub(server.endpoint, pki.agent_cert("laptop"), pki.agent_key("laptop"),
                           pki.ca, max_send_bytes=64 << 20)
    # A hostile client with a valid certificate registers first, as syncing requires.
    s.RegisterAgent(sync_pb2.RegisterAgentRequest(hostname="hostile"), timeout=10)
    yield s
    channel.close()


def _kinds(replies: list[sync_pb2.SyncServerMessage]) -> list[str]:
    return [str(r.WhichOneof("kind")) for r in replies]


def _stored(server: ServerHandle) -> set[str]:
    return stored_digests(server)


BAD_CHUNK_CASES = {
    "beyond_declared_size": lambda sha, data: [_chunk(sha, 0, data + b"overflow")],
    "wrong_offset": lambda sha, data: [_chunk(sha, 7, data[7:])],
    "overlapping": lambda sha, data: [_chunk(sha, 0, data[:100]), _chunk(sha, 50, data[50:])],
    "raw_size_lies": lambda sha, data: [_chunk(sha, 0, data, raw_size=len(data) - 1)],
    "empty_chunk": lambda sha, data: [_chunk(sha, 0, b"")],
    "not_lz4": lambda sha, data: [_chunk(sha, 0, data, lz4=True)],
}


@pytest.mark.parametrize("case", sorted(BAD_CHUNK_CASES))
def test_malformed_chunks_fail_the_file_and_store_nothing(
        case: str, stub: sync_pb2_grpc.PhotonicSyncStub, server: ServerHandle) -> None:
    """Chunks past the declared size, at a wrong or overlapping offset, lying about their
    size, empty, or not LZ4 when flagged so: the file fails (retryable) and nothing is stored."""
    data = bytes(range(256)) * 4
    sha = hashlib.sha256(data).hexdigest()
    replies, code, _ = exchange(stub, [_manifest(_entry(data, f"{case}.jpg")),
                                       *BAD_CHUNK_CASES[case](sha, data)])
    TALLY.hostile_messages += 1
    assert code is grpc.StatusCode.OK
    assert "failed" in _kinds(replies), replies
    assert sha not in _stored(server)


def _run(*chunks: Msg) -> Msg:
    """One SyncClientMessage carrying the chunks of several single-chunk messages."""
    return Msg(chunks=sync_pb2.ChunkRun(chunks=[m.chunk for m in chunks]))


def _of_kind(replies: list[sync_pb2.SyncServerMessage], kind: str) -> list[str]:
    """The SHA-256 of every reply of this kind, in order."""
    return [getattr(r, kind).sha256 for r in replies if r.WhichOneof("kind") == kind]


def test_a_bad_chunk_in_a_run_fails_only_its_own_file(
        stub: sync_pb2_grpc.PhotonicSyncStub, server: ServerHandle) -> None:
    """A run of three whole files whose middle chunk starts at a wrong offset: that file
    fails (retryable), the two others are stored and acknowledged, the stream ends OK."""
    photos = [f"run photo {i} ".encode() * (200 + i) for i in range(3)]
    shas = [hashlib.sha256(p).hexdigest() for p in photos]
    replies, code, details = exchange(stub, [
        _manifest(*(_entry(p, f"run/{i}.jpg") for i, p in enumerate(photos))),
        _run(_chunk(shas[0], 0, photos[0]), _chunk(shas[1], 7, photos[1][7:]),
             _chunk(shas[2], 0, photos[2]))])
    TALLY.hostile_messages += 1
    assert code is grpc.StatusCode.OK, details
    assert sorted(_of_kind(replies, "committed")) == sorted([shas[0], shas[2]])
    assert _of_kind(replies, "failed") == [shas[1]]
    assert all(r.failed.retryable for r in replies if r.WhichOneof("kind") == "failed")
    assert _stored(server) == {shas[0], shas[2]}


def test_a_run_of_too_many_chunks_is_refused_and_nothing_is_stored(
        stub: sync_pb2_grpc.PhotonicSyncStub, server: ServerHandle) -> None:
    """One chunk more than MAX_CHUNKS_PER_RUN in one message (each one byte of a requested
    file, all at the right offsets) ends the stream with INVALID_ARGUMENT before any byte
    is written."""
    data = (bytes(range(256)) * 2)[:MAX_CHUNKS_PER_RUN + 1]
    sha = hashlib.sha256(data).hexdigest()
    replies, code, details = exchange(stub, [
        _manifest(_entry(data, "many.jpg")),
        _run(*(_chunk(sha, i, data[i:i + 1]) for i in range(len(data))))])
    TALLY.hostile_messages += 1
    assert code is grpc.StatusCode.INVALID_ARGUMENT, details
    assert f"at most {MAX_CHUNKS_PER_RUN} chunks" in details
    assert "committed" not in _kinds(replies)
    assert not _stored(server)
    assert received_bytes(server, sha) == 0
    assert server.daemon.running


def test_a_run_over_one_chunk_of_bytes_is_refused(stub: sync_pb2_grpc.PhotonicSyncStub,
                                                 server: ServerHandle) -> None:
    """Two requested files of half a chunk plus one byte in one message: their raw sizes
    add up past MAX_CHUNK_BYTES, so the stream ends with INVALID_ARGUMENT, nothing stored."""
    photos = [b"a" * (MAX_CHUNK_BYTES // 2 + 1), b"b" * (MAX_CHUNK_BYTES // 2 + 1)]
    shas = [hashlib.sha256(p).hexdigest() for p in photos]
    replies, code, details = exchange(stub, [
        _manifest(*(_entry(p, f"big/{i}.jpg") for i, p in enumerate(photos))),
        _run(*(_chunk(sha, 0, p) for sha, p in zip(shas, photos, strict=True)))])
    TALLY.hostile_messages += 1
    assert code is grpc.StatusCode.INVALID_ARGUMENT, details
    assert f"at most {MAX_CHUNK_BYTES} bytes" in details
    assert "committed" not in _kinds(replies)
    assert not _stored(server)
    # partial/ holds the web upload spool folder (empty): no partial bytes were kept
    assert not upload_leftovers(server)
    spool = server.storage / "partial" / "uploads"
    assert not spool.is_dir() or not list(spool.iterdir())


def test_replies_come_in_runs_only_to_agents_that_ask(stub: sync_pb2_grpc.PhotonicSyncStub,
                                                      server: ServerHandle) -> None:
    """With the reply-runs metadata, five HAVE answers ready together share messages and
    flatten to the five decisions in manifest order; without it (an older agent) every
    reply is a message of its own and no message is a run."""
    photos = [f"known photo {i}".encode() * 50 for i in range(5)]
    shas = [hashlib.sha256(p).hexdigest() for p in photos]
    manifest = _manifest(*(_entry(p, f"known/{i}.jpg") for i, p in enumerate(photos)))
    replies, code, details = exchange(stub, [
        manifest, _run(*(_chunk(sha, 0, p) for sha, p in zip(shas, photos, strict=True)))])
    assert code is grpc.StatusCode.OK, details
    assert sorted(_of_kind(replies, "committed")) == sorted(shas)
    assert "replies" not in _kinds(replies)
    assert len(replies) == 10  # five SEND, five COMMITTED, one message each

    runs, code, details = exchange(stub, [manifest],
                                   metadata=[(REPLY_RUNS_METADATA_KEY, "1")])
    assert code is grpc.StatusCode.OK, details
    assert len(runs) < len(photos), _kinds(runs)
    assert "replies" in _kinds(runs)
    flat = [reply for message in runs for reply in wire.replies_in(message)]
    assert _kinds(flat) == ["decision"] * len(photos)
    assert [r.decision.sha256 for r in flat] == shas
    assert {r.decision.action for r in flat} == {sync_pb2.FileDecision.ACTION_HAVE}

    singles, code, details = exchange(stub, [manifest])
    assert code is grpc.StatusCode.OK, details
    assert _kinds(singles) == ["decision"] * len(photos)
    assert [r.decision.sha256 for r in singles] == shas
    assert _stored(server) == set(shas)


def test_sha256_mismatch_is_discarded(stub: sync_pb2_grpc.PhotonicSyncStub,
                                      server: ServerHandle) -> None:
    """Content that does not hash to the declared SHA-256 is discarded, never stored."""
    claimed, sent = b"A" * 1000, b"B" * 1000
    sha = hashlib.sha256(claimed).hexdigest()
    replies, code, _ = exchange(stub, [_manifest(_entry(claimed, "liar.jpg")),
                                       _chunk(sha, 0, sent)])
    TALLY.hostile_messages += 1
    assert code is grpc.StatusCode.OK and "failed" in _kinds(replies)
    assert not _stored(server)
    assert received_bytes(server, sha) == 0


def test_lz4_bomb_is_refused_without_inflating(stub: sync_pb2_grpc.PhotonicSyncStub,
                                               server: ServerHandle) -> None:
    """An LZ4 chunk that would inflate to 1 GiB while declaring 64 KiB is refused from its
    header (it does not declare its content size), before anything is inflated; the server
    stays up. tests/chaos/test_lz4_bombs.py holds every bomb shape to a memory bound."""
    compressor = lz4.frame.LZ4FrameCompressor()
    zeros = b"\0" * (1 << 20)
    bomb = b"".join([compressor.begin(), *(compressor.compress(zeros) for _ in range(1024)),
                     compressor.flush()])
    data = b"\0" * (64 << 10)
    sha = hashlib.sha256(data).hexdigest()
    replies, code, _ = exchange(stub, [_manifest(_entry(data, "bomb.jpg")),
                                       _chunk(sha, 0, bomb, raw_size=len(data), lz4=True)])
    TALLY.hostile_messages += 1
    assert code is grpc.StatusCode.OK and "failed" in _kinds(replies)
    assert "does not declare its content size" in replies[-1].failed.reason
    assert server.daemon.running and not _stored(server)


def test_manifest_of_a_million_entries_is_refused(stub: sync_pb2_grpc.PhotonicSyncStub,
                                                  server: ServerHandle) -> None:
    """A manifest of a million (tiny) entries is refused with INVALID_ARGUMENT; one too large
    for a message is refused by the transport with RESOURCE_EXHAUSTED; the server stays up."""
    tiny = _manifest(*(sync_pb2.ManifestEntry() for _ in range(1_000_000)))
    _, code, details = exchange(stub, [tiny], timeout_s=60)
    assert code is grpc.StatusCode.INVALID_ARGUMENT, details
    assert "at most" in details
    big = _manifest(*(_entry(b"", f"{i:08d}.jpg", sha="ab" * 32) for i in range(120_000)))
    _, code, details = exchange(stub, [big], timeout_s=60)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED, details
    TALLY.hostile_messages += 2
    assert server.daemon.running


def test_a_manifest_of_thousands_of_new_photos_does_not_exhaust_file_descriptors(
        stub: sync_pb2_grpc.PhotonicSyncStub, server: ServerHandle) -> None:
    """Under a 256 open-file soft limit, a 5,000-photo manifest of unknown content is answered
    SEND for every photo (partials are opened at the first chunk, not at the decision), and
    the server still stores the one photo then sent."""
    assert server.daemon.proc is not None
    _, hard = resource.prlimit(server.daemon.proc.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(server.daemon.proc.pid, resource.RLIMIT_NOFILE, (256, hard))
    photos = [f"photo {i}".encode() for i in range(5_000)]
    entries = [_entry(data, f"fd/{i:05d}.jpg") for i, data in enumerate(photos)]
    replies, code, details = exchange(stub, [_manifest(*entries)], timeout_s=120)
    assert code is grpc.StatusCode.OK, details
    decisions = [r.decision for r in replies if r.WhichOneof("kind") == "decision"]
    assert len(decisions) == 5_000
    assert {d.action for d in decisions} == {sync_pb2.FileDecision.ACTION_SEND}
    sha = entries[0].sha256
    replies, code, details = exchange(stub, [_manifest(entries[0]), _chunk(sha, 0, photos[0])])
    assert code is grpc.StatusCode.OK, details
    assert "committed" in _kinds(replies)
    assert sha in _stored(server)
    TALLY.hostile_messages += 2
    assert server.daemon.running


ESCAPING_PATHS = ["../escape.jpg", "a/../../escape.jpg", "/etc/passwd", "C:/evil.jpg",
                  "nul\x00byte.jpg", "", "a//b.jpg", "./dot.jpg", "x" * 300 + ".jpg"]


def test_paths_that_would_escape_the_library_are_rejected_and_audited(
        stub: sync_pb2_grpc.PhotonicSyncStub, server: ServerHandle) -> None:
    """`..`, absolute paths, NUL bytes, empty or overlong names, and a `..` watch name are each
    answered REJECT with a reason, written to the audit log, and nothing lands anywhere."""
    entries = [_entry(f"{i}".encode(), rel) for i, rel in enumerate(ESCAPING_PATHS)]
    entries.append(_entry(b"w", "fine.jpg", watch=".."))
    replies, code, _ = exchange(stub, [_manifest(*entries)])
    TALLY.hostile_messages += len(entries)
    assert code is grpc.StatusCode.OK
    decisions = [r.decision for r in replies if r.WhichOneof("kind") == "decision"]
    assert len(decisions) == len(entries)
    assert all(d.action == sync_pb2.FileDecision.ACTION_REJECT and d.reason for d in decisions)
    [(audited,)] = catalog_rows(server, "SELECT COUNT(*) FROM audit WHERE action = "
                                "'sync.reject' AND actor = 'laptop' AND result = 'refused'")
    assert audited == len(entries)
    assert not [p for p in library_files(server) if p.endswith(".jpg")]
    assert not (server.root / "escape.jpg").exists()


async def _abandon_streams(endpoint: str, pki: TestPki, files: list[Path], count: int) -> int:
    """Opens `count` SyncBatch streams, each offering a real file and sending half of it, then
    walks away (cancel); returns how many were accepted before being abandoned."""
    creds = channel_credentials(pki.agent_cert("laptop"), pki.agent_key("laptop"), pki.ca)
    accepted = 0
    async with grpc.aio.secure_channel(endpoint, creds, options=CHANNEL_OPTIONS) as channel:
        stub = sync_pb2_grpc.PhotonicSyncStub(channel)  # type: ignore[no-untyped-call]
        await stub.RegisterAgent(sync_pb2.RegisterAgentRequest(hostname="hostile"), timeout=10)

        async def one(i: int) -> bool:
            path = files[i % len(files)]
            data = path.read_bytes()
            call = stub.SyncBatch()
            try:
                rel = path.relative_to(path.parents[1]).as_posix()
                await call.write(_manifest(_entry(data, rel)))
                reply = await asyncio.wait_for(call.read(), 10)
                if reply is grpc.aio.EOF or reply.WhichOneof("kind") != "decision":
                    return False
                sha = hashlib.sha256(data).hexdigest()
                await call.write(_chunk(sha, reply.decision.offset, data[:len(data) // 2]))
                return True
            except (grpc.aio.AioRpcError, TimeoutError):
                # Refused (a per-agent slot, a budget), or not answered within 10 s while
                # earlier abandoned streams are still being torn down: not accepted.
                return False
            finally:
                call.cancel()

        for start in range(0, count, 20):
            results = await asyncio.gather(*(one(i) for i in range(start, start + 20)))
            accepted += sum(results)
    return accepted


def test_hundreds_of_abandoned_streams_leave_the_server_healthy(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """Two hundred streams opened, half-fed and abandoned: the server keeps no claim or slot
    from them, and an honest agent then syncs the same photos completely."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    files = write_photos(agent.watches["photos"], range(1, 31))
    accepted = asyncio.run(_abandon_streams(server.endpoint, pki, files, 200))
    TALLY.hostile_messages += 200
    assert accepted > 0
    summary = agent.once()
    assert summary["files_uploaded"] + summary["files_deduplicated"] == len(files), summary
    final_verification(server, [agent])
    assert all(sha256_of(f) in _stored_names(server) for f in files)


def _stored_names(server: ServerHandle) -> set[str]:
    return stored_digests(server)


def test_an_abort_and_a_size_lie_during_a_commit_never_quarantine_good_bytes(
        stub: sync_pb2_grpc.PhotonicSyncStub, server: ServerHandle) -> None:
    """Found by the SyncBatch fuzzer: on one stream, a whole photo, an abort of it while it
    commits, then the same content offered with its size + 1. The abort cannot stop a
    commit whose last byte is in, a declared size never condemns an object (only its bytes
    can), so the object stays intact, nothing is quarantined and the stream ends OK."""
    for i in range(10):
        data = f"photo {i} ".encode() * 120
        sha = hashlib.sha256(data).hexdigest()
        _replies, code, details = exchange(stub, [
            _manifest(_entry(data, f"a{i}.jpg")),
            _chunk(sha, 0, data),
            Msg(abort=sync_pb2.FileAbort(sha256=sha, reason="changed")),
            _manifest(_entry(data, f"b{i}.jpg", size=len(data) + 1))])
        TALLY.hostile_messages += 4
        assert code is grpc.StatusCode.OK, details
        assert object_bytes(server, sha) == data
    assert quarantined(server) == []


def test_aborted_files_give_their_stream_budget_back(tmp_path: Path, pki: TestPki) -> None:
    """Found by the fuzzer's author: an agent whose files keep changing mid-upload aborts
    them; each abort must free what its manifest entry was charged, or the stream is
    refused for memory it no longer holds. 12 rounds of 1,000 offered and aborted files on
    one stream with a 32 MiB stream budget are all answered."""
    server = start_server(tmp_path / "server", pki,
                          extra={"limits": {"max_stream_memory": "32MiB"}})
    try:
        channel, hostile = sync_stub(server.endpoint, pki.agent_cert("laptop"),
                                     pki.agent_key("laptop"), pki.ca)
        hostile.RegisterAgent(sync_pb2.RegisterAgentRequest(hostname="h"), timeout=10)
        out: queue.Queue[Msg | None] = queue.Queue()
        call = hostile.SyncBatch(iter(out.get, None), timeout=120)
        for r in range(12):
            shas = [hashlib.sha256(f"{r}-{i}".encode()).hexdigest() for i in range(1000)]
            out.put(_manifest(*[sync_pb2.ManifestEntry(sha256=s, size=10, watch_name="photos",
                                                       relative_path=f"r{r}/{i}.jpg")
                                for i, s in enumerate(shas)]))
            sends = 0
            while sends < len(shas):
                reply = next(call)
                sends += (reply.WhichOneof("kind") == "decision"
                          and reply.decision.action == sync_pb2.FileDecision.ACTION_SEND)
            for s in shas:
                out.put(Msg(abort=sync_pb2.FileAbort(sha256=s, reason="changed")))
            TALLY.hostile_messages += 1 + len(shas)
        out.put(None)
        assert list(call) == []
        channel.close()
    finally:
        server.daemon.terminate()
