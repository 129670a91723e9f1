"""The hand-built chunk encoding is exactly protobuf's: same bytes as SerializeToString, and
protobuf parses it back to the same chunk (the server decodes it with protobuf)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from photonic import wire
from photonic.models import ChunkData, ContentHash
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
