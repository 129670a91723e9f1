"""Drives the race behind the durability audit's first finding: a stream ends while its commit
waits in a slow sync, and another stream is waiting for the same content. Used once with a
held sync (deterministic) and many times with random timing (chaos)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from photonic.grpc_options import MAX_CHUNK_BYTES
from photonic.media.possession import proof_digest
from photonic.models import CommittedFile, Decision, PossessionProof
from photonic.server.fs_sync import FilesystemSync, _libc_syncfs
from photonic.server.ingest_deps import IngestDeps
from tests.support.ingest import IngestStream, chunk_of, real_ingest_deps, sha_of


class SlowSync:
    """The store's syncfs, with the first call after arm() held: until release(), or for
    `delay_s` when given. entered is set once a held call is waiting."""

    def __init__(self) -> None:
        real = _libc_syncfs()
        assert real is not None, "these races need Linux's syncfs"
        self._real = real
        self._armed = False
        self._delay_s: float | None = None
        self._lock = threading.Lock()
        self.entered = threading.Event()
        self._released = threading.Event()

    def arm(self, delay_s: float | None = None) -> None:
        with self._lock:
            self._armed, self._delay_s = True, delay_s
            self.entered.clear()
            self._released.clear()

    def release(self) -> None:
        self._released.set()

    def __call__(self, fd: int) -> int:
        with self._lock:
            held, self._armed = self._armed, False
        rc = self._real(fd)
        if held:
            self.entered.set()
            if self._delay_s is None:
                self._released.wait(30)
            else:
                time.sleep(self._delay_s)
        return rc


@dataclass
class RaceOutcome:
    first: IngestStream
    second: IngestStream
    object_bytes: bytes | None
    content: bytes

    @property
    def object_intact(self) -> bool:
        return (self.object_bytes is not None
                and hashlib.sha256(self.object_bytes).hexdigest() == sha_of(self.content))

    def acknowledged(self) -> bool:
        """Whether the waiting stream was told its photo is stored (COMMITTED or HAVE)."""
        return bool(self.second.committed()) or any(
            d.action is Decision.HAVE for d in self.second.decisions())


async def _send_all(stream: IngestStream, content: bytes, offset: int) -> None:
    for start in range(offset, len(content), MAX_CHUNK_BYTES):
        end = min(start + MAX_CHUNK_BYTES, len(content))
        await stream.session.on_chunks([chunk_of(content, start, end)])


async def _until(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the race did not settle in time")
        await asyncio.sleep(0.002)


async def cancel_mid_commit(deps: IngestDeps, sync: SlowSync, content: bytes, *,
                            close_after_s: float | None, second_after_s: float,
                            hold_s: float | None,
                            check_second_waits: bool = False) -> RaceOutcome:
    """The laptop sends all of content; its commit's content sync is slowed (held until the
    end when hold_s is None); the desktop offers the same content second_after_s after the
    sync began; the laptop's stream ends close_after_s after that (None: it ends while the
    sync is held, before it is released). The desktop then finishes whatever it is asked to.

    check_second_waits: assert the desktop has had no answer while the laptop's commit was
    still in its worker thread (the claim is held until that thread returns)."""
    first = IngestStream(deps, "laptop")
    second = IngestStream(deps, "desktop")
    await first.offer([content], ["x.jpg"])
    sync.arm(hold_s)
    await _send_all(first, content, 0)
    await asyncio.to_thread(sync.entered.wait, 30)
    await asyncio.sleep(second_after_s)
    await second.offer([content], ["z.jpg"])
    if close_after_s is None:
        await first.session.close()
        if check_second_waits:
            await asyncio.sleep(0.05)
            assert not second.decisions(), "answered while the first commit still ran"
        sync.release()
    else:
        await asyncio.sleep(close_after_s)
        await first.session.close()
        sync.release()
    await _until(lambda: bool(second.decisions() or second.broken), 30)
    for decision in second.decisions():
        if decision.action is Decision.SEND:
            await _send_all(second, content, decision.offset)
        elif decision.action is Decision.PROVE:  # as an honest agent does: from its bytes
            digest = proof_digest(decision.nonce, decision.ranges,
                                  lambda o, n: content[o:o + n])
            await second.session.on_proof(PossessionProof(decision.sha256, decision.nonce,
                                                          digest))
    await second.session.flush()
    await second.session.close()
    obj = deps.store.object_path(sha_of(content))
    data = obj.read_bytes() if obj.exists() else None
    return RaceOutcome(first, second, data, content)


def race_deps(root: Path) -> tuple[IngestDeps, SlowSync, FilesystemSync]:
    """Real ingest dependencies whose group sync is a syncfs that can be slowed."""
    sync = SlowSync()
    filesystem = FilesystemSync(root, syncfs=sync)
    return real_ingest_deps(root, filesystem), sync, filesystem


def odd_sized(size: int) -> bytes:
    """Random content whose length is not a multiple of the O_DIRECT block."""
    return os.urandom(size - 123)


def committed_library_files(deps: IngestDeps, outcome: RaceOutcome) -> list[Path]:
    return [deps.store.root / s.library_path for s in outcome.second.sent
            if isinstance(s, CommittedFile)]
