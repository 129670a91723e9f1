"""A real failing disk under both ways the server makes photos durable (an fsync per file, or
one syncfs per group) and both ways it writes them (O_DIRECT, or the page cache as on FUSE,
NFS and SMB): after a sync error every photo whose bytes were in flight is refused and its
partial file is gone; an upload parked before the failure resumes from bytes that were
fsynced when it was parked; after the disk heals and is remounted (the page cache dropped),
every acknowledged object hashes to its name."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from photonic.models import Decision
from photonic.server import direct_io
from photonic.server.fs_sync import FilesystemSync
from photonic.server.ingest_deps import IngestDeps
from tests.chaos.diskfull import FailingDisk, failing_disk
from tests.chaos.tally import TALLY
from tests.support.ingest import IngestStream, chunk_of, real_ingest_deps, sha_of

pytestmark = [pytest.mark.chaos, pytest.mark.local_objects(
    "O_DIRECT, fsync and syncfs of the local object store on a failing disk")]

KB = 1000


@pytest.fixture(params=["o_direct", "page_cache"])
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """page_cache: the store's filesystem refuses O_DIRECT, so what a resumed partial holds
    is whatever the page cache shows."""
    if request.param == "page_cache":
        monkeypatch.setattr(direct_io, "_O_DIRECT", 0)
    return str(request.param)


class _Store:
    """A failing disk with the real ingest dependencies on it; close() before a remount."""

    def __init__(self, disk: FailingDisk, syncfs: bool) -> None:
        self.disk = disk
        self.filesystem = FilesystemSync(disk.mount) if syncfs else None
        self.deps = real_ingest_deps(disk.mount, self.filesystem)
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            self.deps.catalog.close()
            if self.filesystem is not None:
                self.filesystem.close()


@pytest.fixture(params=["per-file", "syncfs"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[_Store]:
    with failing_disk(tmp_path / "storage") as disk:
        opened = _Store(disk, syncfs=request.param == "syncfs")
        try:
            yield opened
        finally:
            opened.close()


async def _attempt(deps: IngestDeps, content: bytes, name: str, *, stop_at: int | None = None
                   ) -> IngestStream:
    """Offers content and sends it from where the server asks (up to stop_at, then the
    stream ends as if cut); whatever the disk does, returns what the stream was told."""
    stream = IngestStream(deps)
    await stream.offer([content], [name])
    (decision,) = stream.decisions()
    assert decision.action is Decision.SEND
    end = len(content) if stop_at is None else stop_at
    try:
        if decision.offset < end:
            await stream.session.on_chunks([chunk_of(content, decision.offset, end)])
        if stop_at is None:
            await stream.session.flush()
    except Exception as exc:  # the disk failed under the write: the stream would end here
        stream.broken.append(exc)  # type: ignore[arg-type]
    await stream.session.close()
    return stream


def _partials(deps: IngestDeps) -> list[str]:
    return sorted(p.name for p in deps.store.partial.iterdir())


def test_a_sync_error_refuses_every_photo_in_flight_and_acknowledged_ones_survive_a_remount(
        store: _Store, write_path: str) -> None:
    disk, deps = store.disk, store.deps
    parked, in_flight, cut = (os.urandom(300 * KB + 77) for _ in range(3))
    acknowledged: dict[str, bytes] = {}

    async def scenario() -> None:
        # Parked before the disk fails: its bytes were fsynced when its stream ended.
        first = await _attempt(deps, parked, "parked.jpg", stop_at=290 * KB)
        assert not first.committed() and _partials(deps) == [f"{sha_of(parked)}.resume"]
        disk.break_writes()
        TALLY.disk_faults += 1
        # In flight when the disk fails: sent whole, or cut off midway.
        whole = await _attempt(deps, in_flight, "in_flight.jpg")
        half = await _attempt(deps, cut, "cut.jpg", stop_at=150 * KB)
        for refused in (whole, half):
            assert not refused.committed()
        assert whole.broken or whole.failed(), "a photo was neither stored nor refused"
        assert _partials(deps) == [f"{sha_of(parked)}.resume"], write_path
        assert not deps.store.has_object(sha_of(in_flight))
        disk.heal()
        for content, name in ((parked, "parked.jpg"), (in_flight, "in_flight.jpg"),
                              (cut, "cut.jpg")):
            # As an agent does: again until stored. The first commit after the failure may
            # be refused once more (a syncfs reports an error once, to the next caller).
            for attempt in range(3):
                again = await _attempt(deps, content, name)
                if content is parked and attempt == 0:
                    assert again.decisions()[0].offset == 290 * KB  # resumed, not restarted
                if again.committed():
                    break
            assert again.committed() == {sha_of(content)}, (name, again.sent, again.broken)
            acknowledged[sha_of(content)] = content
        assert _partials(deps) == []

    asyncio.run(scenario())
    store.close()
    disk.remount()  # the page cache is gone: what is read now is what the disk holds
    for sha, content in acknowledged.items():
        data = deps.store.object_path(sha).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha, f"{sha[:12]} after the remount"
        assert data == content
        TALLY.objects_rehashed += 1
        TALLY.photos_verified += 1
    assert len(acknowledged) == 3
