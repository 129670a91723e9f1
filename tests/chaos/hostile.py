"""Hostile and odd files for a watch folder, each with its documented outcome, and hostile
protocol clients: raw SyncBatch streams sent with a real (or wrong) certificate."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc

from photonic.grpc_options import CHANNEL_OPTIONS
from photonic.tls import channel_credentials
from photonic.v1 import sync_pb2, sync_pb2_grpc
from tests.support.photos import (
    make_corrupt_jpeg,
    make_exif_bomb,
    make_heic_like,
    make_jpeg,
    make_raw_like,
    make_truncated_jpeg,
)

SYNCED = "stored byte for byte"
SKIPPED = "skipped by the scanner and never opened"

OddFile = tuple[str, str]  # (relative path, documented outcome)


@dataclass(frozen=True)
class OddFolder:
    files: list[OddFile]
    unreadable: list[str]


def _jpeg(folder: Path, rel: str, seed: int, **kwargs: object) -> OddFile:
    make_jpeg(folder / rel, seed=seed, width=96, height=64, **kwargs)  # type: ignore[arg-type]
    return rel, SYNCED


def _photo_oddities(folder: Path) -> Iterator[OddFile]:
    make_truncated_jpeg(folder / "truncated.jpg", seed=1)
    yield "truncated.jpg", SYNCED + " (flagged incomplete after the timeout; --once sends now)"
    make_corrupt_jpeg(folder / "corrupt.jpg", seed=2)
    yield "corrupt.jpg", SYNCED + " (undecodable; EXIF is never a gate)"
    make_exif_bomb(folder / "exif_bomb.tif", seed=3, size_bytes=200_000)
    yield "exif_bomb.tif", SYNCED + " (absurd EXIF counts ignored)"
    yield _jpeg(folder, "absurd_exif.jpg", 4, capture_time=datetime(1, 1, 1),
                extra_exif={0x010E: "x" * 60_000, 0x0100: 2**32 - 1})
    make_heic_like(folder / "no_exif.heic", seed=5)
    yield "no_exif.heic", SYNCED + " (no EXIF: capture time falls back to mtime)"
    make_raw_like(folder / "no_exif.NEF", seed=6, size_bytes=100_000, capture_time=None)
    yield "no_exif.NEF", SYNCED
    (folder / "empty.jpg").write_bytes(b"")
    yield "empty.jpg", SYNCED + " (a zero-byte file is still a file)"


def _name_oddities(folder: Path) -> Iterator[OddFile]:
    for i, name in enumerate(["Ünïcødé 写真 📷.jpg", "new\nline.jpg", "-rf.jpg", "--help.jpg",
                              "a" * 251 + ".jpg", " spaced .jpg", "back\\slash.jpg"]):
        yield _jpeg(folder, name, 10 + i)
    deep = "/".join(f"level{i:02d}" for i in range(60)) + "/deep.jpg"
    yield _jpeg(folder, deep, 20)


def _link_and_special_oddities(folder: Path, outside: Path) -> Iterator[OddFile]:
    yield _jpeg(folder, "real/target.jpg", 30)
    os.symlink("real/target.jpg", folder / "link_inside.jpg")
    yield "link_inside.jpg", SYNCED + " (symlink inside the watch: its target's content)"
    make_jpeg(outside / "secret.jpg", seed=31, width=64, height=64)
    os.symlink(outside / "secret.jpg", folder / "link_outside.jpg")
    yield "link_outside.jpg", SKIPPED + " (symlink leaves the watch folder)"
    os.symlink(folder, folder / "real" / "loop")
    yield "real/loop", SKIPPED + " (symlinked folder is not followed)"
    os.mkfifo(folder / "pipe.jpg")
    yield "pipe.jpg", SKIPPED + " (FIFO: opening it would block the agent)"
    os.mknod(folder / "device.jpg", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    yield "device.jpg", SKIPPED + " (character device)"
    bad = os.fsencode(str(folder)) + b"/bad\xff.jpg"
    with open(bad, "wb") as f:
        f.write(b"\xff\xd8\xff\xd9")
    yield "bad\udcff.jpg", SKIPPED + " (name is not valid UTF-8)"


def make_odd_folder(folder: Path, outside: Path) -> OddFolder:
    """Fills folder with every odd kind of file; returns each with its documented outcome."""
    folder.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    files = [*_photo_oddities(folder), *_name_oddities(folder),
             *_link_and_special_oddities(folder, outside)]
    locked = folder / "unreadable.jpg"
    _jpeg(folder, "unreadable.jpg", 40)
    locked.chmod(0)
    files.append(("unreadable.jpg", SKIPPED + " (permission denied; retried on every scan)"))
    return OddFolder(files, ["unreadable.jpg"])


# hostile clients ---------------------------------------------------------------------------

def sync_stub(endpoint: str, cert: Path, key: Path, ca: Path,
              max_send_bytes: int = 0) -> tuple[grpc.Channel, sync_pb2_grpc.PhotonicSyncStub]:
    """A blocking stub on a mutual-TLS channel with the given identity."""
    options = list(CHANNEL_OPTIONS)
    if max_send_bytes:
        options.append(("grpc.max_send_message_length", max_send_bytes))
    channel = grpc.secure_channel(endpoint, channel_credentials(cert, key, ca), options=options)
    return channel, sync_pb2_grpc.PhotonicSyncStub(channel)  # type: ignore[no-untyped-call]


Reply = sync_pb2.SyncServerMessage


def exchange(stub: sync_pb2_grpc.PhotonicSyncStub,
             messages: list[sync_pb2.SyncClientMessage] | Callable[[], Iterator[
                 sync_pb2.SyncClientMessage]],
             timeout_s: float = 20, metadata: Sequence[tuple[str, str]] | None = None
             ) -> tuple[list[Reply], grpc.StatusCode, str]:
    """Sends messages on one SyncBatch stream (with optional call metadata) and collects every
    reply message, as received, and the final status."""
    source = messages() if callable(messages) else iter(messages)
    replies: list[Reply] = []
    try:
        for reply in stub.SyncBatch(source, timeout=timeout_s, metadata=metadata):
            replies.append(reply)
    except grpc.RpcError as exc:
        details = exc.details() or ""
        assert_no_internals(details)
        return replies, exc.code(), details
    for reply in replies:
        kind = reply.WhichOneof("kind")
        if kind == "failed":
            assert_no_internals(reply.failed.reason)
        elif kind == "decision":
            assert_no_internals(reply.decision.reason)
    return replies, grpc.StatusCode.OK, ""


_INTERNALS = re.compile(r"Traceback|\b[A-Z][A-Za-z]*(Error|Exception)\b|<class |/tmp/|/storage/")


def assert_no_internals(text: str) -> None:
    """What the server tells a client names no internal path, class or traceback (a
    correlation id points to the server's log instead)."""
    found = _INTERNALS.search(text)
    assert found is None, f"a reply leaks server internals ({found.group(0)!r}): {text!r}"
