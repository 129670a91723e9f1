"""A message-level fuzzer for SyncBatch: hypothesis draws sequences of valid and hostile
SyncClientMessages (manifests, chunks, chunk runs, aborts, proofs, empty messages) and a
registered agent sends them, with its real certificate, to a real server daemon over mutual
TLS. After every sequence the server is alive and answers a Heartbeat, its resident memory
stays within a bound, every stored object hashes to its name, nothing appeared outside its
storage folder, no answer told the client a storage path or a Python class name, and an honest
agent's new photo is still COMMITTED. CI runs a bounded sample with a fixed seed; `make fuzz`
runs a longer one (PHOTONIC_FUZZ_EXAMPLES, PHOTONIC_FUZZ_SEED)."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import lz4.frame
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from photonic.grpc_options import MAX_CHUNK_BYTES
from photonic.v1 import sync_pb2, sync_pb2_grpc
from tests.chaos.bombs import status_kib
from tests.chaos.hostile import exchange, sync_stub
from tests.chaos.scenario import final_verification, write_photos
from tests.chaos.tally import TALLY
from tests.support.daemons import ServerHandle, make_agent, sha256_of
from tests.support.pixels import jpeg_bytes
from tests.support.pki import TestPki
from tests.support.stored import bucket_of, object_bytes, quarantined, stored_digests

pytestmark = pytest.mark.chaos

Msg = sync_pb2.SyncClientMessage

EXAMPLES = int(os.environ.get("PHOTONIC_FUZZ_EXAMPLES", "200"))
SEED = int(os.environ.get("PHOTONIC_FUZZ_SEED", "20261201"))
RSS_GROWTH_LIMIT_KIB = 80 * 1024
STREAM_TIMEOUT_S = 15.0
# An unhandled server error (UNKNOWN, INTERNAL), a retryable answer to input that will never
# change (UNAVAILABLE), or a stream the server kept open after the client finished
# (DEADLINE_EXCEEDED): none is an acceptable end for any message sequence.
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
             grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.CANCELLED}

# Small real photos, owned by the hostile agent once uploaded; PROVE_OWNED belong to the honest
# agent alone (uploaded before fuzzing), so offering them draws a possession challenge.
POOL = (*(jpeg_bytes(seed=s, width=48, height=32) for s in range(900, 904)), b"x",
        bytes(range(256)) * 8)
PROVE_OWNED = tuple(jpeg_bytes(seed=s, width=48, height=32) for s in (950, 951))
HOSTILE_NAMES = ("../escape.jpg", "a/../../escape.jpg", "../../../../escape.jpg",
                 "/etc/passwd", "/var/abs.jpg", "nul\x00byte.jpg", "", ".", "..", "a//b.jpg",
                 "./dot.jpg", "x" * 300 + ".jpg", "d/" * 200 + "deep.jpg", "back\\slash.jpg",
                 "cr\rlf\n.jpg", "\x1b[2Jesc.jpg", "Ünïcødé 写真.jpg", "C:/evil.jpg",
                 "dir/", "objects/../../x.jpg")
HOSTILE_WATCHES = ("", ".", "..", "a/b", "/abs", "x" * 300, "photos\x00", "../photos")
HUGE = (1 << 40, 2**63 - 1, 2**64 - 1, MAX_CHUNK_BYTES * 1000, MAX_CHUNK_BYTES + 1)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fresh(n: int) -> bytes:
    """Content the server has most likely never seen: a real small photo, or compressible
    bytes (so that agents' LZ4 frames shrink it)."""
    if n % 2:
        return jpeg_bytes(seed=n, width=40, height=24)
    return f"fuzzed content {n} ".encode() * (1 + n % 97)


contents = st.one_of(st.integers(0, 2**31).map(_fresh), st.integers(0, 2**31).map(_fresh),
                     st.sampled_from(POOL), st.sampled_from(PROVE_OWNED),
                     st.binary(min_size=0, max_size=3000))


def shas(content: bytes) -> st.SearchStrategy[str]:
    """Mostly the content's own SHA-256, else a malformed or foreign one."""
    real = _sha(content)
    return st.one_of(st.just(real), st.just(real), st.just(real), st.sampled_from([
        real.upper(), real[:-1], real + "0", "", "0" * 64, "g" * 64, "../" + "a" * 61,
        _sha(content + b"!"), real + "\x00"]), st.text(max_size=70))


def _names() -> st.SearchStrategy[str]:
    plain = st.from_regex(r"[a-z0-9]{1,10}(/[a-z0-9]{1,10}){0,2}\.jpg", fullmatch=True)
    return st.one_of(plain, plain, st.sampled_from(HOSTILE_NAMES), st.text(max_size=40))


@st.composite
def entries(draw: st.DrawFn, content: bytes) -> sync_pb2.ManifestEntry:
    """A manifest entry for content: right or wrong hash and size, a valid or hostile path."""
    size = draw(st.one_of(st.just(len(content)), st.just(len(content)), st.sampled_from(
        [0, len(content) + 1, max(len(content) - 1, 0), *HUGE]), st.integers(0, 2**64 - 1)))
    return sync_pb2.ManifestEntry(
        sha256=draw(shas(content)), size=size,
        watch_name=draw(st.one_of(st.just("photos"), st.just("photos"),
                                  st.sampled_from(HOSTILE_WATCHES), st.text(max_size=20))),
        relative_path=draw(_names()),
        mtime_ns=draw(st.integers(-(2**63), 2**63 - 1)),
        base_sha256=draw(st.one_of(st.just(""), shas(content))),
        incomplete=draw(st.booleans()))


@st.composite
def manifests(draw: st.DrawFn, pool: Sequence[bytes]) -> Msg:
    """Entries for some of the stream's contents, sometimes with a duplicate entry."""
    files = [draw(entries(c)) for c in draw(st.lists(st.sampled_from(pool), max_size=5))]
    if files and draw(st.booleans()):
        files.append(files[draw(st.integers(0, len(files) - 1))])
    return Msg(manifest=sync_pb2.BatchManifest(
        batch_id=draw(st.one_of(st.text(max_size=20), st.just("b" * 5000))),
        agent_id=draw(st.sampled_from(["", "", "", "", "", "laptop", "desktop", "x" * 300])),
        conflict_policy=draw(st.integers(0, 3)), files=files))


def _lz4_data(raw: bytes, how: str, garbage: bytes) -> tuple[bytes, bool]:
    if how == "lz4":
        return lz4.frame.compress(raw, store_size=True), True
    if how == "lz4_without_size":
        return lz4.frame.compress(raw, store_size=False), True
    if how == "lz4_truncated":
        return lz4.frame.compress(raw, store_size=True)[:-3], True
    if how == "lz4_garbage":
        return garbage, True
    if how == "raw_flagged_lz4":
        return raw, True
    return raw, False


ENCODINGS = ("lz4", "lz4_without_size", "lz4_truncated", "lz4_garbage", "raw_flagged_lz4")
CHUNK_FAULTS = ("sha", "offset", "piece", "flip", "garbage", "raw_size", *ENCODINGS)
"""What a stray chunk may get wrong, starting from the right whole-content chunk ("lz4" alone
is a valid chunk, compressed)."""


@st.composite
def chunks(draw: st.DrawFn, content: bytes) -> sync_pb2.Chunk:
    """The right chunk for the whole content with none, one or two faults: a foreign or
    malformed hash, a wrong offset, only a piece, a flipped bit, garbage, a lying raw size,
    LZ4 frames real, without their size, truncated or garbage, raw bytes flagged LZ4."""
    faults = set(draw(st.lists(st.sampled_from(CHUNK_FAULTS), max_size=2)))
    start, end = 0, len(content)
    if "piece" in faults:
        start = draw(st.integers(0, len(content)))
        end = draw(st.integers(start, len(content)))
    raw = content[start:end]
    if "flip" in faults and raw:  # right size, one bit off: must not hash to the declared SHA
        raw = bytes([raw[0] ^ 1]) + raw[1:]
    if "garbage" in faults:
        raw = draw(st.binary(max_size=200))
    how = next((f for f in ENCODINGS if f in faults), "raw")
    data, flagged = _lz4_data(raw, how, draw(st.binary(max_size=64)))
    offset = start
    if "offset" in faults:
        offset = draw(st.one_of(st.sampled_from([start + 1, len(content), 2**63, 2**64 - 1]),
                                st.integers(0, 2**64 - 1)))
    raw_size = len(raw)
    if "raw_size" in faults:
        raw_size = draw(st.one_of(st.sampled_from([0, len(raw) + 1, max(len(raw) - 1, 0),
                                                   MAX_CHUNK_BYTES, 2**32 - 1]),
                                  st.integers(0, 2**32 - 1)))
    sha = draw(shas(content)) if "sha" in faults else _sha(content)
    return sync_pb2.Chunk(sha256=sha, offset=offset, data=data, lz4=flagged, raw_size=raw_size)


@st.composite
def complete_uploads(draw: st.DrawFn, content: bytes) -> list[Msg]:
    """The whole content in order, as an honest agent sends it: cut into one to three pieces,
    each its own message or all in one chunk run, raw or as real LZ4 frames."""
    cuts = sorted(draw(st.lists(st.integers(1, max(len(content) - 1, 1)), max_size=2,
                                unique=True))) if len(content) > 1 else []
    bounds = [0, *cuts, len(content)]
    compress = draw(st.booleans())
    pieces = []
    for a, b in itertools.pairwise(bounds):
        data, flagged = _lz4_data(content[a:b], "lz4" if compress else "raw", b"")
        pieces.append(sync_pb2.Chunk(sha256=_sha(content), offset=a, data=data, lz4=flagged,
                                     raw_size=b - a))
    if draw(st.booleans()):
        return [Msg(chunks=sync_pb2.ChunkRun(chunks=pieces))]
    return [Msg(chunk=p) for p in pieces]


@st.composite
def other_messages(draw: st.DrawFn, pool: Sequence[bytes]) -> Msg:
    """A stray chunk or run, an abort, a proof nobody asked for or a wrong one, or nothing."""
    content = draw(st.sampled_from(pool))
    kind = draw(st.sampled_from(["chunk", "chunk", "run", "run", "abort", "proof", "empty"]))
    if kind == "chunk":
        return Msg(chunk=draw(chunks(content)))
    if kind == "run":
        return Msg(chunks=sync_pb2.ChunkRun(chunks=draw(st.lists(chunks(content), max_size=4))))
    if kind == "abort":
        return Msg(abort=sync_pb2.FileAbort(sha256=draw(shas(content)), reason=draw(
            st.one_of(st.text(max_size=30), st.just("r" * 10_000)))))
    if kind == "proof":
        return Msg(proof=sync_pb2.PossessionProof(
            sha256=draw(shas(content)), nonce=draw(st.binary(max_size=40)),
            digest=draw(st.binary(max_size=40))))
    return Msg()


@st.composite
def streams(draw: st.DrawFn) -> list[Msg]:
    """One SyncBatch stream: usually an honest-looking manifest of its contents first, then
    any mix of manifests, complete uploads, stray chunks, runs, aborts, proofs, empties."""
    pool = draw(st.lists(contents, min_size=1, max_size=3))
    out: list[Msg] = []
    if draw(st.integers(0, 3)):
        out.append(Msg(manifest=sync_pb2.BatchManifest(batch_id="fuzz", files=[
            sync_pb2.ManifestEntry(sha256=_sha(c), size=len(c), watch_name="photos",
                                   relative_path=f"fuzz/{_sha(c)[:12]}.jpg") for c in pool])))
    uploads = st.sampled_from(pool).flatmap(complete_uploads).map(tuple)
    steps = draw(st.lists(st.one_of(uploads, manifests(pool), other_messages(pool),
                                    other_messages(pool)),
                          max_size=6))
    for step in steps:
        out.extend(step if isinstance(step, tuple) else [step])
    return out


sequences = st.lists(streams(), min_size=1, max_size=3)


@dataclass
class Harness:
    """The server under fuzzing, a hostile and an honest agent's stubs, and what the checks
    after each sequence compare against."""

    server: ServerHandle
    hostile: sync_pb2_grpc.PhotonicSyncStub
    honest: sync_pb2_grpc.PhotonicSyncStub
    channels: list[grpc.Channel]
    baseline_kib: int = 0
    outside: set[str] = field(default_factory=set)
    storage_entries: set[str] = field(default_factory=set)
    verified: dict[str, int] = field(default_factory=dict)  # object file: inode hashed
    honest_seed: int = 10_000
    seen: Counter[str] = field(default_factory=Counter)
    """Answers the hostile streams drew: reply kinds, decision actions, final status codes."""

    @property
    def pid(self) -> int:
        assert self.server.daemon.proc is not None
        return self.server.daemon.proc.pid

    def honest_upload(self, content: bytes, rel: str) -> None:
        """An honest agent's new photo: SEND, one chunk, COMMITTED, stored under its hash."""
        sha = _sha(content)
        replies, code, details = exchange(self.honest, [
            Msg(manifest=sync_pb2.BatchManifest(batch_id="honest", files=[
                sync_pb2.ManifestEntry(sha256=sha, size=len(content), watch_name="photos",
                                       relative_path=rel)])),
            Msg(chunk=sync_pb2.Chunk(sha256=sha, offset=0, data=content,
                                     raw_size=len(content)))], timeout_s=STREAM_TIMEOUT_S)
        assert code is grpc.StatusCode.OK, (code, details)
        committed = [r.committed.sha256 for r in replies if r.WhichOneof("kind") == "committed"]
        assert committed == [sha], replies
        assert object_bytes(self.server, sha) == content, sha

    def send(self, stream: list[Msg]) -> None:
        """One hostile stream: it ends with a refusal the client can act on, never with an
        unhandled error or a hang, and nothing it is told leaks the server's internals (the
        server's folder here; exchange() refuses class names, tracebacks and paths)."""
        replies, code, details = exchange(self.hostile, stream, timeout_s=STREAM_TIMEOUT_S)
        TALLY.fuzz_inputs += len(stream)
        assert code not in FORBIDDEN, (code, details)
        self.seen[code.name] += 1
        for r in replies:
            kind = str(r.WhichOneof("kind"))
            self.seen[sync_pb2.FileDecision.Action.Name(r.decision.action)
                      if kind == "decision" else kind] += 1
        texts = [details, *(r.failed.reason for r in replies if r.WhichOneof("kind") == "failed"),
                 *(r.decision.reason for r in replies if r.WhichOneof("kind") == "decision")]
        for text in texts:
            assert str(self.server.root) not in text, text

    def check(self) -> None:
        """Alive, heartbeat answered, memory bounded, every object hashes to its name and none
        was quarantined (nothing here damages one), nothing outside the storage folder or new
        beside it, honest traffic still served."""
        assert self.server.daemon.running, self.server.daemon.log()[-3000:]
        self.honest.Heartbeat(sync_pb2.HeartbeatRequest(), timeout=10)
        rss = status_kib(self.pid, "VmRSS")
        assert rss - self.baseline_kib <= RSS_GROWTH_LIMIT_KIB, (self.baseline_kib, rss)
        self._check_objects()
        assert _outside(self.server) == self.outside
        assert set(os.listdir(self.server.storage)) <= self.storage_entries
        held = quarantined(self.server)
        assert not held, (
            "an intact object was quarantined: no message may make the server distrust "
            f"bytes that hash to their name: {held}")
        library = self.server.storage / "library"  # none at all with objects in S3
        assert not library.exists() or not [e.path for e in _entries(library)
                                            if e.is_symlink()]
        self.honest_seed += 1
        self.honest_upload(jpeg_bytes(seed=self.honest_seed, width=64, height=48),
                           f"honest/{self.honest_seed}.jpg")

    def _check_objects(self) -> None:
        """Hashes every object not seen before (an object replaced by a rename has a new
        inode; an object in a bucket is immutable); the final verification re-hashes them all
        once more."""
        if bucket_of(self.server) is not None:
            for name in stored_digests(self.server) - self.verified.keys():
                data = object_bytes(self.server, name) or b""
                assert hashlib.sha256(data).hexdigest() == name, f"{name} does not hash to it"
                self.verified[name] = 0
            return
        for entry in _entries(self.server.storage / "objects"):
            if entry.is_file(follow_symlinks=False) and \
                    self.verified.get(entry.path) != entry.inode():
                name = os.path.basename(entry.path)
                assert sha256_of(Path(entry.path)) == name, f"{name} does not hash to its name"
                self.verified[entry.path] = entry.inode()


def _entries(root: Path) -> Iterator[os.DirEntry[str]]:
    """Every entry below root, from directory listings alone (no stat per file: the checks
    run after every sequence, over thousands of files in a long run)."""
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as listing:
            for entry in listing:
                yield entry
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)


def _outside(server: ServerHandle) -> set[str]:
    """Every path under the test's folder except the storage folder (and the server's log,
    which grows): a hostile path that escaped the library would show here."""
    top = server.root.parent
    skip = {server.storage, server.root / "server.log"}
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        out.update(str((here / n).relative_to(top)) for n in [*dirnames, *filenames]
                   if here / n not in skip)
    return out


def _open(server: ServerHandle, pki: TestPki) -> Harness:
    stubs = []
    for agent in ("laptop", "desktop"):
        channel, stub = sync_stub(server.endpoint, pki.agent_cert(agent), pki.agent_key(agent),
                                  pki.ca, max_send_bytes=64 << 20)
        stub.RegisterAgent(sync_pb2.RegisterAgentRequest(hostname=f"fuzz-{agent}"), timeout=10)
        stubs.append((channel, stub))
    harness = Harness(server, stubs[0][1], stubs[1][1], [c for c, _ in stubs])
    for i, content in enumerate(PROVE_OWNED):
        harness.honest_upload(content, f"owned/{i}.jpg")
    harness.send([Msg(manifest=sync_pb2.BatchManifest(batch_id="warm", files=[
        sync_pb2.ManifestEntry(sha256=_sha(POOL[0]), size=len(POOL[0]), watch_name="photos",
                               relative_path="warm.jpg")])),
        Msg(chunk=sync_pb2.Chunk(sha256=_sha(POOL[0]), data=POOL[0], raw_size=len(POOL[0])))])
    harness.baseline_kib = status_kib(harness.pid, "VmRSS")
    harness.outside = _outside(server)
    harness.storage_entries = {*os.listdir(server.storage), "quarantine"}
    return harness


def _close(harness: Harness) -> None:
    for channel in harness.channels:
        channel.close()


@pytest.mark.timeout(120 + EXAMPLES)  # `make fuzz` runs thousands: far past the default
def test_fuzzed_syncbatch_sequences_leave_the_server_sound(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """Seeded sequences of valid and hostile SyncBatch messages from a registered agent: after
    each, the server is alive and answers a Heartbeat, its RSS is within 80 MB of where it
    started, every object hashes to its name, nothing was created outside the storage folder,
    no answer carried the storage path or a class name, and an honest agent's new photo is
    COMMITTED. The sample reaches every answer (SEND, HAVE, PROVE, REJECT, COMMITTED, FAILED,
    refused streams); at the end a real agent syncs and the whole library verifies."""
    harness = _open(server, pki)

    @seed(SEED)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(sequences)
    def one_sequence(sequence: list[list[Msg]]) -> None:
        for stream in sequence:
            harness.send(stream)
        harness.check()

    try:
        one_sequence()
    except BaseException as exc:
        exc.add_note(f"to run this sample again: PHOTONIC_FUZZ_SEED={SEED} "
                     f"PHOTONIC_FUZZ_EXAMPLES={EXAMPLES}")
        raise
    finally:
        _close(harness)
    reached = {"committed", "failed", "ACTION_SEND", "ACTION_HAVE", "ACTION_PROVE",
               "ACTION_REJECT", "OK", "INVALID_ARGUMENT"}
    assert reached <= set(harness.seen), f"the sample never reached {reached - set(harness.seen)}"
    agent = make_agent(tmp_path / "archive", pki, "archive", server)
    files = write_photos(agent.watches["photos"], range(1, 4))
    summary = agent.once()
    assert summary["files_uploaded"] == len(files), summary
    final_verification(server, [agent])
