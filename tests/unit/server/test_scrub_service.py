"""The background scrub's walk on a real store and catalog: pacing to its rate, durable
progress that a restart continues, findings; and a repair from a replica through the
ObjectSource seam (good bytes stored and relinked, wrong bytes refused). The catalog is each
engine in turn (SQLite, PostgreSQL); the scrub's progress stays in the local catalog.db."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

import pytest

from photonic._configcatalog import CatalogConfig
from photonic.models import ConflictPolicy, ContentHash, ManifestEntry
from photonic.server.archive_client import ReplicaEntry
from photonic.server.library import Library
from photonic.server.repair import ObjectRepairer, ReplicaFetcher
from photonic.server.scrub_service import Finding, ScrubWalk
from photonic.server.storage.catalogs import open_scrub_tables
from photonic.server.store import ContentStore
from photonic.server.verification import ObjectVerifier
from tests.support.catalogs import Catalogs


class Stack:
    def __init__(self, root: Path, catalogs: Catalogs, url: str = "") -> None:
        """url: the catalog to open again (a restart); "" makes a fresh one."""
        self.store = ContentStore(root)
        self.url = url or catalogs.url(root)
        self.catalog = catalogs.open(self.url)
        self.library = Library(self.store, self.catalog)
        self.tables = open_scrub_tables(root, CatalogConfig(self.url), self.catalog)

    def put(self, name: str, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        upload = self.store.open_partial(ContentHash(sha), len(data), resume=False)
        upload.append(data)
        self.store.commit(upload)
        entry = ManifestEntry(sha256=ContentHash(sha), size=len(data), watch_name="photos",
                              relative_path=name)
        self.library.record_many("laptop", [(entry, PurePosixPath(name))], ConflictPolicy.AUTO)
        return sha

    def walk(self, rate: int, clock: FakeClock | None = None) -> ScrubWalk:
        clock = clock or FakeClock()
        return ScrubWalk(self.tables, ObjectVerifier(self.store, self.catalog), self.catalog,
                         rate, clock=clock.now, pause=clock.pause, save_every_s=3600)

    def flip_byte(self, sha: str) -> None:
        path = self.store.object_file(sha)
        os.chmod(path, 0o644)
        with open(path, "r+b") as f:
            first = f.read(1)
            f.seek(0)
            f.write(bytes([first[0] ^ 0xFF]))


class FakeClock:
    """Time that moves only when the walk pauses: the pauses add up to what the rate asks."""

    def __init__(self) -> None:
        self.t = 100.0
        self.paused = 0.0

    def now(self) -> float:
        return self.t

    def pause(self, _stop: threading.Event, seconds: float) -> None:
        self.t += seconds
        self.paused += seconds


@pytest.fixture
def stack(tmp_path: Path, catalogs: Catalogs) -> Stack:
    return Stack(tmp_path / "storage", catalogs)


def test_walk_pauses_to_keep_to_its_rate(stack: Stack) -> None:
    """Ten objects of 1,000 bytes at 1,000 bytes/s take ten (fake) seconds: the walk pauses
    between objects instead of reading as fast as the disk goes."""
    for n in range(10):
        stack.put(f"p{n}.jpg", bytes([n]) * 1000)
    clock = FakeClock()
    done = stack.walk(1000, clock).run(threading.Event(), lambda f: None, lambda n: None)
    assert done
    assert clock.paused == pytest.approx(10.0)
    assert stack.tables.progress().bytes_checked == 10_000


def test_unlimited_rate_never_pauses(stack: Stack) -> None:
    """scrub_rate 0 is no limit."""
    stack.put("a.jpg", b"a" * 5000)
    clock = FakeClock()
    stack.walk(0, clock).run(threading.Event(), lambda f: None, lambda n: None)
    assert clock.paused == 0


def test_a_restart_continues_the_pass_where_it_stopped(
        stack: Stack, tmp_path: Path, catalogs: Catalogs) -> None:
    """Stopped after four of ten objects, the walk saved its cursor; a new process (new
    connections) checks only the other six and then completes the pass."""
    shas = sorted(stack.put(f"p{n}.jpg", bytes([n]) * 100) for n in range(10))
    stop = threading.Event()
    first: list[int] = []

    def count(nbytes: int) -> None:
        first.append(nbytes)
        if len(first) == 4:
            stop.set()

    assert not stack.walk(0).run(stop, lambda f: None, count)
    progress = stack.tables.progress()
    assert progress.in_pass and progress.cursor_sha256 == shas[3]
    assert progress.objects_checked == 4 and progress.last_completed_ms == 0

    restarted = Stack(tmp_path / "storage", catalogs, stack.url)
    seen: list[str] = []
    original = restarted.tables.objects_after
    restarted.tables.objects_after = lambda cursor, limit: [  # type: ignore[method-assign]
        *(item for item in original(cursor, limit) if not seen.append(item[0]))]
    assert restarted.walk(0).run(threading.Event(), lambda f: None, lambda n: None)
    assert seen == shas[4:]
    done = restarted.tables.progress()
    assert not done.in_pass and done.objects_checked == 10 and done.last_completed_ms > 0


def test_a_flipped_byte_is_found_quarantined_and_kept(stack: Stack) -> None:
    """The damaged object leaves objects/ for quarantine/ (its bytes kept), is reported as
    new once, and as still unrepaired by the next pass."""
    sha = stack.put("a.jpg", b"x" * 3000)
    stack.put("b.jpg", b"y" * 3000)
    stack.flip_byte(sha)
    found: list[Finding] = []
    stack.walk(0).run(threading.Event(), found.append, lambda n: None)
    assert [(f.sha256, f.new) for f in found] == [(sha, True)]
    assert "hash" in found[0].reason
    assert not stack.store.has_object(sha)
    kept = list((stack.store.root / "quarantine").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes()[1:] == b"x" * 2999
    assert stack.tables.unrepaired_count() == 1
    assert stack.tables.progress().damaged == 1
    again: list[Finding] = []
    stack.walk(0).run(threading.Event(), again.append, lambda n: None)
    assert [(f.sha256, f.new) for f in again] == [(sha, False)]


class Replica:
    """An ObjectSource holding fixed bytes per sha256 (the seam the gRPC client fills)."""

    def __init__(self, name: str, objects: dict[str, bytes]) -> None:
        self._name = name
        self._objects = objects

    @property
    def name(self) -> str:
        return self._name

    async def fetch(self, sha256: str, offset: int) -> AsyncIterator[bytes]:
        from photonic.errors import NotFound
        if sha256 not in self._objects:
            raise NotFound(f"{self._name} holds no object {sha256[:12]}")
        data = self._objects[sha256]
        for start in range(offset, len(data), 1000):
            yield data[start:start + 1000]

    async def list_objects(self, after_sha256: str, limit: int,
                           library_prefix: str) -> list[ReplicaEntry]:
        return []

    async def close(self) -> None:
        return None


def test_repair_takes_the_first_replica_with_the_right_bytes(stack: Stack) -> None:
    """A replica with other bytes is refused (nothing stored from it); the next one's
    verified bytes become the object again and the library path is linked to them."""
    data = b"photo" * 1000
    sha = stack.put("a.jpg", data)
    stack.flip_byte(sha)
    stack.walk(0).run(threading.Event(), lambda f: None, lambda n: None)
    liar = Replica("liar", {sha: b"P" + data[1:]})
    empty = Replica("empty", {})
    good = Replica("good", {sha: data})
    repairer = ObjectRepairer(ReplicaFetcher(stack.store, [liar, empty, good]), stack.store,
                              stack.catalog, stack.library)
    fetched = asyncio.run(repairer.repair(sha, len(data)))
    assert fetched.node == "good"
    assert [p.split(":")[0] for p in fetched.problems] == ["liar", "empty"]
    library_file = stack.store.root / "library/laptop/photos/a.jpg"
    assert hashlib.sha256(library_file.read_bytes()).hexdigest() == sha
    assert stack.store.holds(library_file, sha)
    assert stack.tables.unrepaired_count() == 0
    assert list(stack.store.partial.iterdir()) == []


def test_without_a_replica_the_object_stays_quarantined(stack: Stack) -> None:
    """No source has it: reported with each source's reason, quarantine kept open."""
    sha = stack.put("a.jpg", b"z" * 2000)
    stack.flip_byte(sha)
    stack.walk(0).run(threading.Event(), lambda f: None, lambda n: None)
    repairer = ObjectRepairer(ReplicaFetcher(stack.store, [Replica("arch", {})]), stack.store,
                              stack.catalog, stack.library)
    fetched = asyncio.run(repairer.repair(sha, 2000))
    assert not fetched.ok and "holds no object" in fetched.problems[0]
    assert stack.tables.unrepaired_count() == 1
    assert len(list((stack.store.root / "quarantine").iterdir())) == 1


def test_list_objects_pages_and_the_unrepaired_list_come_from_the_catalog(
        stack: Stack) -> None:
    """ListObjects' pages (whole, and under a library folder) and the unrepaired list read
    the catalog the server uses, whichever engine holds it."""
    shas = {name: stack.put(name, name.encode() * 50)
            for name in ("a.jpg", "sub/b.jpg", "sub/c.jpg")}
    ordered = sorted(shas.values())
    whole = stack.tables.held_page("", 2, "")
    assert [h.sha256 for h in whole] == ordered[:2]
    names = {v: k for k, v in shas.items()}
    assert [h.library_paths for h in whole] == [(f"laptop/photos/{names[s]}",)
                                                for s in ordered[:2]]
    under = stack.tables.held_page("", 10, "laptop/photos/sub")
    assert sorted(h.sha256 for h in under) == sorted([shas["sub/b.jpg"], shas["sub/c.jpg"]])
    assert stack.tables.held_page(ordered[-1], 10, "") == []
    stack.catalog.record_quarantine(shas["a.jpg"], "quarantine/x", "damaged")
    stack.catalog.record_quarantine(shas["a.jpg"], "quarantine/y", "damaged again")
    [item] = stack.tables.unrepaired()
    assert (item.sha256, item.reason, item.quarantined_file, item.library_paths) == (
        shas["a.jpg"], "damaged", "quarantine/x", ("laptop/photos/a.jpg",))
    assert stack.tables.unrepaired_count() == 1
