"""Copying the embedded store's objects (`<storage_path>/objects/ab/cd/<sha256>`) into an S3
bucket for `photonic server migrate --objects s3://…`, through the same S3BlobStore the
server writes with: each object streams into an upload that hashes what it sends and is put
at its content address only once the hash matches, so a local object damaged on disk is
refused (reported, never copied). An object already in the bucket is skipped (content
addressed: a re-run resumes), then every object's size in the bucket is checked, and with
reread every object is read back from the bucket and hashed."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from photonic import errors
from photonic._configobjects import S3Settings
from photonic.models import ContentHash, is_content_hash
from photonic.server import faults
from photonic.server.storage.multipart import MultipartLedger
from photonic.server.storage.s3 import S3BlobStore

READ_BYTES = 8 << 20
WORKERS = 4
"""Objects sent at once: S3 throughput comes from parallel requests."""


@dataclass
class ObjectTally:
    copied: int = 0
    already: int = 0
    bytes_sent: int = 0
    damaged: list[str] = field(default_factory=list)
    """Local objects whose bytes do not hash to their name: not copied."""
    missing: list[str] = field(default_factory=list)
    """Objects the bucket lacks (or holds with another size, or bytes) after the copy."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.missing


def local_objects(storage_path: Path) -> Iterator[tuple[str, Path]]:
    """(sha256, file) of every object of the embedded store, in key order."""
    root = storage_path / "objects"
    for first in sorted(os.scandir(root), key=lambda e: e.name) if root.is_dir() else ():
        if not first.is_dir():
            continue
        for second in sorted(os.scandir(first.path), key=lambda e: e.name):
            if not second.is_dir():
                continue
            for entry in sorted(os.scandir(second.path), key=lambda e: e.name):
                if is_content_hash(entry.name) and entry.is_file():
                    yield entry.name, Path(entry.path)


def open_bucket(settings: S3Settings, ledger: MultipartLedger) -> S3BlobStore:
    from photonic.server.storage.s3_client import S3Client

    return S3BlobStore(S3Client(settings), settings.prefix, ledger)


def copy_objects(storage_path: Path, bucket: S3BlobStore, *, reread: bool,
                 say: Callable[..., object] = print) -> ObjectTally:
    tally = ObjectTally()
    last = [time.monotonic()]

    def one(item: tuple[str, Path]) -> None:
        sha, path = item
        if bucket.has(sha):
            with tally.lock:
                tally.already += 1
            return
        try:
            sent = _send(bucket, sha, path)
        except errors.IntegrityError:
            with tally.lock:
                tally.damaged.append(sha)
            return
        with tally.lock:
            tally.bytes_sent += sent
            tally.copied += 1
        faults.hit("migrate_after_object")
        if time.monotonic() - last[0] > 5:
            last[0] = time.monotonic()
            say(f"objects: {tally.copied} copied, {tally.already} already there", flush=True)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, local_objects(storage_path)))
    say(f"objects: {tally.copied} copied ({tally.bytes_sent} bytes), {tally.already} already "
        "in the bucket", flush=True)
    _check(storage_path, bucket, tally, reread)
    return tally


def _send(bucket: S3BlobStore, sha: str, path: Path) -> int:
    size = path.stat().st_size
    upload = bucket.partial(ContentHash(sha), size, resume=False)
    try:
        with path.open("rb") as f:
            while data := f.read(READ_BYTES):
                upload.append(data)
        upload.finish()
        bucket.commit(upload)
        return size
    finally:
        if not upload.closed:
            upload.discard()


def _check(storage_path: Path, bucket: S3BlobStore, tally: ObjectTally, reread: bool) -> None:
    """Every local object is in the bucket with its size (and, reread, its hash)."""
    damaged = set(tally.damaged)

    def one(item: tuple[str, Path]) -> None:
        sha, path = item
        if sha in damaged:
            return
        stat = bucket.stat(sha)
        if stat is None or stat.size != path.stat().st_size or (
                reread and not bucket.check(sha).intact):
            with tally.lock:
                tally.missing.append(sha)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, local_objects(storage_path)))

