"""The hand-built chunk encoding is exactly protobuf's: same bytes as SerializeToString, and
protobuf parses it back to the same chunk (the server decodes it with protobuf). Runs of
chunks and of replies go through the wire and come back whole and in order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from photonic import wire
from photonic.models import (
    ChunkData,
    CommittedFile,
    ContentHash,
    Decision,
    FailedFile,
    FileDecision,
)
from photonic.v1 import sync_pb2

chunks = st.builds(
    ChunkData,
    sha256=st.text(alphabet="0123456789abcdef", min_size=0, max_size=64).map(ContentHash),
    offset=st.integers(min_value=0, max_value=2**64 - 1),
    data=st.binary(max_size=5000),
    lz4=st.booleans(),
    raw_size=st.integers(min_value=0, max_value=2**32 - 1),
)


def _protobuf_chunk(c: ChunkData) -> sync_pb2.SyncClientMessage:
    return sync_pb2.SyncClientMessage(chunk=sync_pb2.Chunk(
        sha256=c.sha256, offset=c.offset, data=c.data, lz4=c.lz4, raw_size=c.raw_size))


@given(chunks)
def test_encoded_chunk_is_byte_identical_to_protobuf(chunk: ChunkData) -> None:
    encoded = wire.encode_chunk_message(chunk)
    assert encoded == _protobuf_chunk(chunk).SerializeToString()
    parsed = sync_pb2.SyncClientMessage.FromString(encoded)
    assert parsed.WhichOneof("kind") == "chunk"
    assert wire.chunk_from_wire(parsed.chunk) == chunk


def test_a_one_mebibyte_chunk_round_trips() -> None:
    chunk = ChunkData(ContentHash("ab" * 32), 3 << 20, bytes(range(256)) * 4096, False, 1 << 20)
    parsed = sync_pb2.SyncClientMessage.FromString(wire.encode_chunk_message(chunk))
    assert wire.chunk_from_wire(parsed.chunk) == chunk


def test_the_serializer_passes_encoded_bytes_through_and_serializes_messages() -> None:
    assert wire.serialize_client_message(b"\x12\x00") == b"\x12\x00"
    abort = wire.abort_to_wire("ab" * 32, "changed")
    assert wire.serialize_client_message(abort) == abort.SerializeToString()


def _protobuf_run(cs: list[ChunkData]) -> sync_pb2.SyncClientMessage:
    return sync_pb2.SyncClientMessage(chunks=sync_pb2.ChunkRun(chunks=[
        _protobuf_chunk(c).chunk for c in cs]))


@given(st.lists(chunks, min_size=1, max_size=5))
def test_encoded_chunk_run_is_byte_identical_to_protobuf(run: list[ChunkData]) -> None:
    """The agent hand-encodes runs too; the server parses them with protobuf, so any drift
    in field order or default omission would corrupt every small photo."""
    encoded = wire.encode_chunk_run(run)
    assert encoded == _protobuf_run(run).SerializeToString()
    parsed = sync_pb2.SyncClientMessage.FromString(encoded)
    assert parsed.WhichOneof("kind") == "chunks"
    assert [wire.chunk_from_wire(c) for c in wire.chunks_in(parsed)] == run


SHA = ContentHash("cd" * 32)
EDGE_RUNS = {
    "one_default_chunk": [ChunkData(ContentHash(""), 0, b"", False, 0)],
    "offset_past_32_bits": [ChunkData(SHA, 2**40 + 3, b"x" * 300, False, 300),
                            ChunkData(SHA, 0, b"y", True, 1)],
    "empty_sha_and_lz4": [ChunkData(ContentHash(""), 5, b"\x04\"M\x18", True, 70_000),
                          ChunkData(SHA, 0, b"", False, 0),
                          ChunkData(SHA, 2**64 - 1, b"z" * 200, False, 2**32 - 1)],
    "five_mixed": [ChunkData(ContentHash(f"{i:064x}"), i * 1000, bytes([i]) * (i * 60),
                             i % 2 == 0, i * 60) for i in range(5)],
}


@pytest.mark.parametrize("case", sorted(EDGE_RUNS))
def test_chunk_run_edge_cases_match_protobuf_and_parse_back(case: str) -> None:
    """Defaults, multi-byte varints and data past 127 bytes, pinned so they are always run."""
    run = EDGE_RUNS[case]
    encoded = wire.encode_chunk_run(run)
    assert encoded == _protobuf_run(run).SerializeToString()
    parsed = sync_pb2.SyncClientMessage.FromString(encoded)
    assert [wire.chunk_from_wire(c) for c in wire.chunks_in(parsed)] == run


def test_chunks_in_a_single_chunk_message_is_that_chunk() -> None:
    """Older agents send one chunk per message; the server reads both shapes the same way."""
    chunk = ChunkData(SHA, 7, b"abc", False, 3)
    parsed = sync_pb2.SyncClientMessage.FromString(wire.encode_chunk_message(chunk))
    assert [wire.chunk_from_wire(c) for c in wire.chunks_in(parsed)] == [chunk]


def _replies() -> list[sync_pb2.SyncServerMessage]:
    return [
        wire.decision_to_wire(FileDecision(SHA, "photos", "a.jpg", Decision.HAVE, version=2)),
        wire.committed_to_wire(CommittedFile(SHA, "photos", "b.jpg", 1, library_path="x")),
        wire.failed_to_wire(FailedFile(SHA, "chunk at offset 7, expected 0", True)),
    ]


def test_a_single_reply_is_sent_as_itself() -> None:
    """An agent that reads runs and one that does not both understand a lone reply."""
    (reply,) = _replies()[:1]
    message = wire.reply_run_to_wire([reply])
    assert message.WhichOneof("kind") == "decision"
    assert message == reply
    assert wire.replies_in(message) == [reply]


def test_a_run_of_replies_survives_the_wire_in_order() -> None:
    """Acknowledgements must arrive in the order the server sent them."""
    replies = _replies()
    message = wire.reply_run_to_wire(replies)
    assert message.WhichOneof("kind") == "replies"
    parsed = sync_pb2.SyncServerMessage.FromString(message.SerializeToString())
    assert wire.replies_in(parsed) == replies
    assert [r.WhichOneof("kind") for r in wire.replies_in(parsed)] == [
        "decision", "committed", "failed"]


def test_a_run_nested_in_a_run_is_ignored() -> None:
    """A server never nests runs; a hostile one cannot make the agent recurse."""
    replies = _replies()
    nested = wire.reply_run_to_wire(replies[:2])
    outer = sync_pb2.SyncServerMessage(replies=sync_pb2.ReplyRun(
        replies=[replies[0], nested, replies[2]]))
    parsed = sync_pb2.SyncServerMessage.FromString(outer.SerializeToString())
    assert wire.replies_in(parsed) == [replies[0], replies[2]]
