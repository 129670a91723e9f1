"""Tests for photonic.media.hashing: streaming SHA-256, copy-while-hashing, durable renames."""

from __future__ import annotations

import errno
import hashlib
import os
import random
from pathlib import Path

import pytest

from photonic.media import hashing
from photonic.media.hashing import (
    StreamingVerifier,
    copy_and_hash_fd,
    durable_replace,
    fsync_directory,
    sha256_file,
)


def _write_random(path: Path, size: int, seed: int = 7) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("size", [0, 1, 2047, 4096, (1 << 20) + 13])
def test_sha256_file_matches_hashlib_on_whole_bytes(tmp_path: Path, size: int) -> None:
    """Block-wise hashing gives the same digest and size as hashing the whole content at once."""
    data = _write_random(tmp_path / "photo.bin", size)
    digest, counted = sha256_file(tmp_path / "photo.bin", block_bytes=4096)
    assert digest == hashlib.sha256(data).hexdigest()
    assert counted == size


def test_sha256_file_rejects_non_positive_block_size(tmp_path: Path) -> None:
    """A zero block size is a caller bug and is refused instead of looping forever."""
    _write_random(tmp_path / "photo.bin", 10)
    with pytest.raises(ValueError, match="block_bytes"):
        sha256_file(tmp_path / "photo.bin", block_bytes=0)


def test_many_files_share_a_few_read_buffers_and_stay_correct(tmp_path: Path) -> None:
    """Consecutive files reuse one pooled buffer (no 1 MiB allocation per small photo), and a
    leftover tail of a longer file never leaks into the next, shorter file's digest."""
    sizes = [(1 << 20) + 99, 10, 150_000, 0, 3 << 20, 1]
    paths = []
    for i, size in enumerate(sizes):
        paths.append(tmp_path / f"{i}.jpg")
        _write_random(paths[-1], size, seed=i)
    pool = hashing._READ_BUFFERS
    taken: list[int] = []
    real_take = pool.take

    def recording_take(block_bytes: int) -> bytearray:
        buffer = real_take(block_bytes)
        taken.append(id(buffer))
        return buffer

    pool.take = recording_take  # type: ignore[method-assign]
    try:
        for path in paths:
            assert sha256_file(path) == (hashlib.sha256(path.read_bytes()).hexdigest(),
                                         path.stat().st_size)
    finally:
        del pool.take
    assert len(set(taken)) == 1, "one thread hashing one file at a time needs one buffer"


def test_a_kept_first_block_view_cannot_show_the_next_files_bytes(tmp_path: Path) -> None:
    """The first-block view is valid only during the callback; one kept past it is released,
    so using it fails loudly instead of showing another photo's bytes from the reused buffer."""
    _write_random(tmp_path / "a.jpg", 5000, seed=1)
    _write_random(tmp_path / "b.jpg", 5000, seed=2)
    kept: list[memoryview] = []
    sha256_file(tmp_path / "a.jpg", on_first_block=kept.append)
    sha256_file(tmp_path / "b.jpg")
    with pytest.raises(ValueError, match="released"):
        bytes(kept[0])


def test_a_read_error_gives_the_buffer_back() -> None:
    """A disk error mid-file (EIO from a failing card) still returns the buffer to the pool,
    so a scan over many unreadable files does not allocate one per file."""
    import errno
    import io

    class FailingCard(io.RawIOBase):
        def __init__(self) -> None:
            self.reads = 0

        def readinto(self, buffer: object) -> int:
            self.reads += 1
            if self.reads > 1:
                raise OSError(errno.EIO, "Input/output error")
            return 4096

    pool = hashing._READ_BUFFERS
    list(hashing._blocks(io.BytesIO(b"x"), hashing.READ_BLOCK_BYTES))  # one buffer is free
    free_before = len(pool._free)
    with pytest.raises(OSError, match="Input/output"):
        for _block in hashing._blocks(FailingCard(), hashing.READ_BLOCK_BYTES):
            assert len(pool._free) == free_before - 1  # taken while the file is read
    assert len(pool._free) == free_before


def test_threads_hashing_at_once_get_their_own_buffers(tmp_path: Path) -> None:
    """Scan threads hash concurrently; each digest is still that of its own file."""
    from concurrent.futures import ThreadPoolExecutor

    datas = {}
    for i in range(24):
        datas[tmp_path / f"{i}.jpg"] = _write_random(tmp_path / f"{i}.jpg", 200_000 + i * 997,
                                                     seed=i)
    with ThreadPoolExecutor(6) as pool:
        results = dict(zip(datas, pool.map(sha256_file, datas), strict=True))
    for path, data in datas.items():
        assert results[path] == (hashlib.sha256(data).hexdigest(), len(data))


def test_copy_and_hash_copies_identically_and_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy is byte-identical, the digest is that of the source, and the copy is fsynced."""
    data = _write_random(tmp_path / "card.jpg", (3 << 20) + 5)
    synced: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    digest, size = _copy(tmp_path / "card.jpg", tmp_path / "buffer.tmp")
    assert (tmp_path / "buffer.tmp").read_bytes() == data
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert synced, "the temporary copy must be fsynced before the caller renames it"


def _copy(src: Path, dst: Path, *, fsync: bool = True) -> tuple[str, int]:
    fd = os.open(src, os.O_RDONLY)
    try:
        return copy_and_hash_fd(fd, dst, mode=0o644, fsync=fsync)
    finally:
        os.close(fd)


def test_copy_and_hash_without_fsync_skips_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync=False copies correctly without calling fsync (for callers that batch syncs)."""
    data = _write_random(tmp_path / "a.jpg", 1000)
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", calls.append)
    _copy(tmp_path / "a.jpg", tmp_path / "b.tmp", fsync=False)
    assert (tmp_path / "b.tmp").read_bytes() == data
    assert calls == []


def test_streaming_verifier_matches_hashlib_over_pieces() -> None:
    """Feeding content piecewise gives the digest and size of the whole."""
    data = random.Random(1).randbytes(100_000)
    verifier = StreamingVerifier()
    for start in range(0, len(data), 7_777):
        verifier.update(data[start : start + 7_777])
    assert verifier.hexdigest() == hashlib.sha256(data).hexdigest()
    assert verifier.size == len(data)


def test_streaming_verifier_hexdigest_does_not_finalise() -> None:
    """Asking for the digest midway does not stop further updates from counting."""
    verifier = StreamingVerifier()
    verifier.update(b"abc")
    assert verifier.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    verifier.update(b"def")
    assert verifier.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


def test_resume_from_fd_continues_a_partial_upload(tmp_path: Path) -> None:
    """A verifier rebuilt from a partial file (read through the descriptor that will append
    to it), fed the rest, equals the hash of the whole file."""
    data = random.Random(3).randbytes((2 << 20) + 99)
    cut = (1 << 20) + 17
    (tmp_path / "upload.partial").write_bytes(data[:cut])
    fd = os.open(tmp_path / "upload.partial", os.O_RDONLY)
    try:
        verifier = StreamingVerifier.resume_from_fd(fd)
    finally:
        os.close(fd)
    assert verifier.size == cut
    verifier.update(data[cut:])
    assert verifier.hexdigest() == hashlib.sha256(data).hexdigest()
    assert verifier.size == len(data)


def test_durable_replace_moves_over_existing_target(tmp_path: Path) -> None:
    """durable_replace atomically replaces the target and removes the source name."""
    (tmp_path / "obj.tmp").write_bytes(b"new")
    (tmp_path / "obj").write_bytes(b"old")
    durable_replace(tmp_path / "obj.tmp", tmp_path / "obj")
    assert (tmp_path / "obj").read_bytes() == b"new"
    assert not (tmp_path / "obj.tmp").exists()


def test_durable_replace_across_directories_fsyncs_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move between directories fsyncs the destination and the source directory."""
    (tmp_path / "partial").mkdir()
    (tmp_path / "objects").mkdir()
    (tmp_path / "partial" / "x").write_bytes(b"data")
    synced: list[Path] = []
    monkeypatch.setattr(hashing, "fsync_directory", synced.append)
    durable_replace(tmp_path / "partial" / "x", tmp_path / "objects" / "x")
    assert (tmp_path / "objects" / "x").read_bytes() == b"data"
    assert synced == [tmp_path / "objects", tmp_path / "partial"]


def test_fsync_directory_on_real_directory_and_missing_one(tmp_path: Path) -> None:
    """fsync of an existing directory succeeds; a missing directory is an error, not a no-op."""
    fsync_directory(tmp_path)
    with pytest.raises(FileNotFoundError):
        fsync_directory(tmp_path / "missing")


def test_fsync_fd_asks_macos_drives_to_flush_their_cache(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """On macOS fsync leaves data in the drive's cache; fsync_fd issues F_FULLFSYNC there
    (the operation is passed in, as this Linux machine has none), and falls back to a plain
    fsync on a filesystem that does not implement it."""

    calls: list[tuple[int, int]] = []
    fsyncs: list[int] = []
    refuse = [False]

    def fake_fcntl(fd: int, op: int) -> int:
        calls.append((fd, op))
        if refuse[0]:
            raise OSError(errno.ENOTSUP, "not on this filesystem")
        return 0

    monkeypatch.setattr(hashing.fcntl, "fcntl", fake_fcntl)
    monkeypatch.setattr(hashing.os, "fsync", fsyncs.append)
    with open(tmp_path / "f", "wb") as f:
        hashing.fsync_fd(f.fileno(), full_op=51)
        assert calls == [(f.fileno(), 51)] and fsyncs == []
        refuse[0] = True
        hashing.fsync_fd(f.fileno(), full_op=51)
        assert fsyncs == [f.fileno()]
    assert hashing.FULLFSYNC_OP is None  # Linux: plain fsync reaches stable storage


def test_sqlite_databases_use_full_fsync_where_the_platform_has_it(tmp_path: Path) -> None:
    """fullfsync and checkpoint_fullfsync are on for every photonic database (ignored where
    fsync already flushes the drive, used on macOS)."""
    from photonic.sqlite_db import open_database

    conn = open_database(tmp_path / "catalog.db", "photonic.server.migrations")
    try:
        assert conn.execute("PRAGMA fullfsync").fetchone() == (1,)
        assert conn.execute("PRAGMA checkpoint_fullfsync").fetchone() == (1,)
    finally:
        conn.close()
