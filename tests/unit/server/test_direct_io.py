"""DirectAppender: whatever the sizes and order of appends, the file holds exactly the bytes
appended, O_DIRECT or not; failures cut the file back."""

from __future__ import annotations

import errno
import fcntl
import os
import random
import resource
import signal
import threading
from pathlib import Path

import pytest

from photonic.server import direct_io
from photonic.server.direct_io import ALIGN_BYTES, DirectAppender


def _pieces(rng: random.Random, total: int) -> list[bytes]:
    out, left = [], total
    while left:
        n = min(left, rng.choice([1, 7, ALIGN_BYTES - 1, ALIGN_BYTES, ALIGN_BYTES + 1,
                                  1 << 20, (1 << 20) + 3, rng.randrange(1, 300_000)]))
        out.append(rng.randbytes(n))
        left -= n
    return out


@pytest.mark.parametrize("seed", range(6))
def test_the_file_holds_exactly_what_was_appended(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    pieces = _pieces(rng, rng.randrange(1, 5_000_000))
    path = tmp_path / "f.part"
    out = DirectAppender(path, 0)
    for piece in pieces:
        out.append(piece)
    assert out.end == sum(map(len, pieces))
    out.fsync()
    out.close()
    assert path.read_bytes() == b"".join(pieces)


def test_o_direct_is_used_where_the_filesystem_allows_it(tmp_path: Path) -> None:
    out = DirectAppender(tmp_path / "f.part", 0)
    try:
        flags = fcntl.fcntl(out._fd, fcntl.F_GETFL)
        assert out.direct and flags & os.O_DIRECT, (
            f"{tmp_path} refused O_DIRECT; the page cache path is what runs here")
        out.append(b"x" * (3 * ALIGN_BYTES + 5))
        assert os.stat(tmp_path / "f.part").st_size == 3 * ALIGN_BYTES  # the tail waits
    finally:
        out.close()
    assert os.stat(tmp_path / "f.part").st_size == 3 * ALIGN_BYTES + 5  # close wrote it


@pytest.mark.parametrize("existing", [0, 1, ALIGN_BYTES - 1, ALIGN_BYTES, 10 * ALIGN_BYTES + 17])
def test_a_resumed_file_keeps_its_bytes_and_continues(tmp_path: Path, existing: int) -> None:
    path = tmp_path / "f.part"
    head = random.Random(existing).randbytes(existing)
    path.write_bytes(head)
    out = DirectAppender(path, existing)
    assert out.end == existing
    tail = random.Random(1).randbytes(2 * ALIGN_BYTES + 100)
    out.append(tail[:5])
    out.append(tail[5:])
    out.fsync()
    out.close()
    assert path.read_bytes() == head + tail


def test_without_o_direct_every_write_goes_through_the_page_cache(tmp_path: Path) -> None:
    path = tmp_path / "f.part"
    out = DirectAppender(path, 0, direct=False)
    out.append(b"abc")
    assert not out.direct and path.read_bytes() == b"abc"  # nothing waits in memory
    out.close()


def test_a_filesystem_that_refuses_o_direct_falls_back(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """No filesystem here refuses O_DIRECT (ext4 and tmpfs take it), so the refusal is
    simulated at the one call that asks for it."""
    def refuse(fd: int, on: bool) -> bool:
        return False
    monkeypatch.setattr(direct_io, "_set_direct", refuse)
    path = tmp_path / "f.part"
    out = DirectAppender(path, 0)
    out.append(b"z" * (ALIGN_BYTES + 1))
    out.close()
    assert not out.direct and path.read_bytes() == b"z" * (ALIGN_BYTES + 1)


def test_a_failed_write_cuts_the_file_back_and_keeps_the_end(tmp_path: Path) -> None:
    """A real refusal from the kernel: a file size limit makes the write stop part way
    (EFBIG), as a full disk would with ENOSPC."""
    path = tmp_path / "f.part"
    out = DirectAppender(path, 0)
    out.append(b"a" * ALIGN_BYTES)
    before = out.end
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (3 * ALIGN_BYTES, old_limit[1]))
    try:
        with pytest.raises(OSError) as caught:
            out.append(b"b" * (8 * ALIGN_BYTES))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert caught.value.errno == errno.EFBIG
    assert out.end == before
    assert path.read_bytes() == b"a" * ALIGN_BYTES  # the part that did land is cut off
    out.append(b"c" * 10)
    out.close()
    assert path.read_bytes() == b"a" * ALIGN_BYTES + b"c" * 10


def test_closing_while_another_thread_appends_never_writes_into_another_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream that ends closes its upload from the event loop while a worker may be mid
    write. The close waits for that write; the next append is refused, and a file opened
    right after the close (which may get the same descriptor number) receives nothing."""
    inside, release = threading.Event(), threading.Event()
    real_pwrite = os.pwrite

    def slow_pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
        inside.set()
        release.wait(10)
        return real_pwrite(fd, data, offset)

    out = DirectAppender(tmp_path / "a.part", 0, direct=False)
    monkeypatch.setattr(direct_io.os, "pwrite", slow_pwrite)
    writer = threading.Thread(target=out.append, args=(b"a" * 5000,))
    writer.start()
    assert inside.wait(10)
    closer = threading.Thread(target=out.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive(), "close did not wait for the write in progress"
    release.set()
    writer.join(10)
    closer.join(10)
    monkeypatch.setattr(direct_io.os, "pwrite", real_pwrite)
    other = tmp_path / "b.part"
    with open(other, "wb"):
        with pytest.raises(OSError) as refused:
            out.append(b"late bytes")
        assert refused.value.errno == errno.EBADF
    assert (tmp_path / "a.part").read_bytes() == b"a" * 5000
    assert other.read_bytes() == b""
