"""MediaService on a real store, catalog, library and job queue: only content the catalog
references is served; a thumbnail is made once, kept whole on disk and read back from there;
concurrent requests share one rendering; what is not an image is refused clearly, and again
without decoding it again. The catalog is each engine in turn (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
from PIL import Image

from photonic import errors
from photonic.jobs_model import JobOutput, JobState
from photonic.models import ConflictPolicy, ContentHash, ExifSummary, ManifestEntry
from photonic.server.catalog import Catalog
from photonic.server.jobs.queue import Lease, NewJob
from photonic.server.jobs.sqlite_queue import SqliteJobQueue
from photonic.server.library import Library
from photonic.server.media.service import MediaService
from photonic.server.store import ContentStore
from tests.support.catalogs import Catalogs
from tests.support.photos import make_corrupt_jpeg, make_jpeg


@dataclass
class World:
    root: Path
    store: ContentStore
    catalog: Catalog
    library: Library
    queue: SqliteJobQueue
    media: MediaService

    def put(self, content: bytes, rel: str = "", agent: str = "laptop") -> str:
        """Stores content; with rel, records it as a version of photos/<rel>."""
        sha = hashlib.sha256(content).hexdigest()
        upload = self.store.open_partial(ContentHash(sha), len(content), resume=False)
        upload.append(content)
        self.store.commit(upload)
        if rel:
            entry = ManifestEntry(ContentHash(sha), len(content), "photos", rel)
            self.library.record_many(agent, [(entry, PurePosixPath(rel))], ConflictPolicy.AUTO)
        return sha


@pytest.fixture
def world(tmp_path: Path, catalogs: Catalogs) -> Iterator[World]:
    store = ContentStore(tmp_path / "storage")
    catalog = catalogs.new(tmp_path / "storage")
    queue = SqliteJobQueue(tmp_path / "storage" / "jobs.db")
    yield World(tmp_path, store, catalog, Library(store, catalog, None), queue,
                MediaService(store, catalog, queue, tmp_path / "storage"))
    queue.close()


def jpeg(tmp_path: Path, seed: int) -> bytes:
    return make_jpeg(tmp_path / f"p{seed}.jpg", seed=seed).read_bytes()


def test_a_thumbnail_is_made_once_then_read_from_its_file(world: World) -> None:
    """The second request renders nothing: it returns the cached file's bytes (proved by
    changing them); no temporary file is left beside it."""
    sha = world.put(jpeg(world.root, 1), "a.jpg")

    async def scenario() -> None:
        first = await world.media.thumbnail(sha, 256)
        assert Image.open(io.BytesIO(first)).size == (256, 192)
        cached = world.media.thumbs.path_of(sha, 256)
        assert cached.read_bytes() == first
        assert cached.parent == world.root / "storage" / "cache" / "thumbs" / sha[:2]
        assert await world.media.thumbnail(sha, 256) == first
        assert world.media.thumbs.rendered == 1
        cached.write_bytes(b"from the cache")
        assert await world.media.thumbnail(sha, 256) == b"from the cache"
        assert [p.name for p in cached.parent.iterdir()] == [cached.name]

    asyncio.run(scenario())


def test_concurrent_requests_share_one_rendering(world: World) -> None:
    sha = world.put(jpeg(world.root, 2), "b.jpg")

    async def scenario() -> None:
        results = await asyncio.gather(*(world.media.thumbnail(sha, 1024) for _ in range(6)))
        assert len(set(results)) == 1
        assert world.media.thumbs.rendered == 1

    asyncio.run(scenario())


def test_only_referenced_content_is_served(world: World) -> None:
    """An object in the store that no version, conflict or job output names is not found;
    a malformed id is refused before any lookup; an unknown size is refused."""
    orphan = world.put(jpeg(world.root, 3))
    named = world.put(jpeg(world.root, 4), "2024/c.jpg")

    async def scenario() -> None:
        with pytest.raises(errors.NotFound):
            await world.media.thumbnail(orphan, 256)
        with pytest.raises(errors.NotFound):
            await world.media.download(orphan)
        for bad in ("../../etc/passwd", orphan.upper(), orphan + "\n", orphan[:-1]):
            with pytest.raises(errors.InvalidInput):
                await world.media.servable(bad)
        with pytest.raises(errors.InvalidInput):
            await world.media.thumbnail(named, 300)
        download = await world.media.download(named)
        body = b"".join([chunk async for chunk in download.chunks()])
        assert download.name == "c.jpg" and hashlib.sha256(body).hexdigest() == named

    asyncio.run(scenario())


def test_undecodable_content_is_unsupported_and_remembered(world: World) -> None:
    sha = world.put(make_corrupt_jpeg(world.root / "bad.jpg", seed=5).read_bytes(), "bad.jpg")

    async def scenario() -> None:
        for _ in range(2):
            with pytest.raises(errors.UnsupportedMedia):
                await world.media.thumbnail(sha, 256)
        assert world.media.thumbs.rendered == 0
        assert not world.media.thumbs.path_of(sha, 256).exists()

    asyncio.run(scenario())


def test_photo_details_list_versions_and_exif(world: World) -> None:
    """Two versions of one path: both listed oldest first, the newer current, EXIF from the
    stored bytes of the current one."""
    old = world.put(jpeg(world.root, 6), "d.jpg")
    new = world.put(make_jpeg(world.root / "d2.jpg", seed=7, model="Z 8").read_bytes(), "d.jpg")

    async def scenario() -> None:
        level = world.catalog.heads_with_ids("laptop", "photos", "", 10)
        view = await world.media.photo(str(level[0][0]))
        assert view.library_path == "laptop/photos/d.jpg" and view.sha256 == new
        assert [(v.sha256, v.current) for v in view.versions] == [(old, False), (new, True)]
        assert view.exif.camera == "Nikon Z 8"
        for bad in ("x", "-1", "1" * 30):
            with pytest.raises(errors.InvalidInput):
                await world.media.photo(bad)
        with pytest.raises(errors.NotFound):
            await world.media.photo("999999")

    asyncio.run(scenario())


def test_jobs_on_any_version_are_listed_and_completed_outputs_derived(world: World) -> None:
    """A completed job on the old version and a pending one on the current: both listed,
    newest first; only the completed one's output is derived, and that output (named by the
    job's outputs only) is servable."""
    old = world.put(jpeg(world.root, 8), "e.jpg")
    new = world.put(jpeg(world.root, 9), "e.jpg")
    output = world.put(b"a derived png")
    world.queue.add([NewJob("job-old", "bgremove", "web:ops", 3, input_sha256=old)], 1000)
    world.queue.add([NewJob("job-new", "facecrop", "web:ops", 3, input_sha256=new)], 2000)
    leased = world.queue.lease("job-old", "w1", 10**13, 60_000, 1500)
    assert leased is not None
    world.queue.complete(Lease("job-old", leased.attempts), [JobOutput(
        output, "e.png", 13, "_derived/bgremove/laptop/photos/e.jpg.png")], 10, 1600)

    async def scenario() -> None:
        location = world.catalog.heads_with_ids("laptop", "photos", "", 10)[0][0]
        view = await world.media.photo(str(location))
        assert [(j.job_id, j.state) for j in view.jobs] == [
            ("job-new", JobState.PENDING), ("job-old", JobState.COMPLETED)]
        assert [(d.sha256, d.name, d.job_id, d.kind) for d in view.derived] == [
            (output, "e.png", "job-old", "bgremove")]
        assert await world.media.servable(output) == output

    asyncio.run(scenario())


def test_a_parked_conflicts_incoming_side_is_servable_under_its_paths_name(
        world: World) -> None:
    """Content that only a conflict names (the incoming side, in no version) is served, with
    the conflicting path's file name; its details come from its own bytes."""
    server_side = world.put(jpeg(world.root, 10), "2024/f.jpg")
    incoming = world.put(make_jpeg(world.root / "f2.jpg", seed=11, model="Z 9").read_bytes())
    world.catalog.park_conflict("laptop", "photos", "2024/f.jpg", server_side, incoming,
                                100, ExifSummary(), 0)

    async def scenario() -> None:
        assert await world.media.servable(incoming) == "f.jpg"
        view = await world.media.content(incoming)
        assert view.exif.camera == "Nikon Z 9"
        assert view.size == (world.root / "f2.jpg").stat().st_size

    asyncio.run(scenario())
