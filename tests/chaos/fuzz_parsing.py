"""An atheris fuzz target for the parsing code that meets untrusted bytes first: LZ4 chunk
decompression, relative-path validation, and SyncClientMessage wire parsing.

Run by test_properties.py as a subprocess for a bounded number of runs; by hand:
`python tests/chaos/fuzz_parsing.py -runs=100000` (any libFuzzer flag works).
"""

from __future__ import annotations

import posixpath
import sys

import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

with atheris.instrument_imports():
    from google.protobuf.message import DecodeError

    from photonic import wire
    from photonic.errors import IntegrityError, InvalidInput
    from photonic.media.chunks import decompress_chunk
    from photonic.paths import safe_relative_path
    from photonic.v1 import sync_pb2

MAX_RAW_BYTES = 1 << 20


def _chunk(fdp: atheris.FuzzedDataProvider) -> None:
    expected = fdp.ConsumeIntInRange(0, MAX_RAW_BYTES * 2)
    data = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        out = decompress_chunk(data, expected_raw_size=expected, max_raw_size=MAX_RAW_BYTES)
    except IntegrityError:
        return
    assert len(out) == expected, "decompressed size differs from the declared size"


def _path(fdp: atheris.FuzzedDataProvider) -> None:
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
    try:
        rel = safe_relative_path(text)
    except InvalidInput:
        return
    joined = posixpath.normpath(posixpath.join("/library/agent/watch", str(rel)))
    assert joined.startswith("/library/agent/watch/"), f"{text!r} escapes the library"
    assert "\x00" not in str(rel)


def _message(fdp: atheris.FuzzedDataProvider) -> None:
    try:
        message = sync_pb2.SyncClientMessage.FromString(fdp.ConsumeBytes(fdp.remaining_bytes()))
    except DecodeError:
        return
    if message.WhichOneof("kind") == "manifest":
        for entry in message.manifest.files:
            wire.entry_from_wire(entry)
    elif message.WhichOneof("kind") == "chunk":
        wire.chunk_from_wire(message.chunk)


TARGETS = (_chunk, _path, _message)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    TARGETS[fdp.ConsumeIntInRange(0, len(TARGETS) - 1)](fdp)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
