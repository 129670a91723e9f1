"""Library.record_many records a manifest's paths a slice at a time in one catalog transaction
(SqliteCatalog.writing): the answers, rows and library files are exactly those of recording
the same paths one by one, across slice boundaries, with new paths, known heads, conflicts
inside one manifest under each policy, and a path the storage refuses in the middle. And the
manifest's lookups (one IN query per 500 hashes) answer a mix of known and unknown hashes
across that limit. Every test runs on both catalog engines (SQLite, PostgreSQL)."""

from __future__ import annotations

import hashlib
import os
from contextlib import AbstractContextManager
from pathlib import Path, PurePosixPath

import pytest

from photonic import errors
from photonic.models import CommittedFile, ConflictPolicy, ContentHash, ExifSummary, ManifestEntry
from photonic.server import library as library_module
from photonic.server.catalog import NewVersion
from photonic.server.catalog_writes import CatalogWrites
from photonic.server.library import Library
from photonic.server.storage import pg_catalog_writes
from photonic.server.store import ContentStore
from tests.support.catalogs import Catalogs, table_rows

Item = tuple[ManifestEntry, PurePosixPath]
Outcome = CommittedFile | errors.Unstorable


def content(n: int) -> bytes:
    return f"photo-{n}|".encode() * (n + 1)


def sha(n: int) -> ContentHash:
    return ContentHash(hashlib.sha256(content(n)).hexdigest())


class World:
    def __init__(self, root: Path, catalogs: Catalogs) -> None:
        self.root = root
        self.store = ContentStore(root)
        self.url = catalogs.url(root)
        self.catalog = catalogs.open(self.url)
        self.library = Library(self.store, self.catalog, None)

    def stored(self, *numbers: int) -> None:
        for n in numbers:
            if not self.store.has_object(sha(n)):
                upload = self.store.open_partial(sha(n), len(content(n)), resume=False)
                upload.append(content(n))
                self.store.commit(upload, sync=False)

    def rows(self) -> tuple[object, ...]:
        """Everything record_many may write, without ids and times."""
        return tuple(table_rows(self.catalog, sql) for sql in (
                "SELECT agent_id, watch_name, rel_path, head_version, folder FROM locations "
                "ORDER BY agent_id, watch_name, rel_path",
                "SELECT l.rel_path, v.version, v.sha256, v.library_path, v.mtime_ns "
                "FROM versions v JOIN locations l ON l.id = v.location_id "
                "ORDER BY l.rel_path, v.version",
                "SELECT l.rel_path, c.server_sha256, c.incoming_sha256, c.resolution, "
                "c.resolved_ms IS NULL FROM conflicts c JOIN locations l "
                "ON l.id = c.location_id ORDER BY l.rel_path, c.incoming_sha256",
                "SELECT sha256, size FROM photos ORDER BY sha256",
                "SELECT * FROM agent_totals ORDER BY 1",
                "SELECT * FROM library_folders ORDER BY 1, 2, 3",
            ))

    def files(self) -> dict[str, str]:
        """Every library file, by path, with the content its bytes are."""
        found: dict[str, str] = {}
        library_root = self.root / "library"
        for folder, _dirs, names in os.walk(library_root):
            for name in names:
                path = Path(folder) / name
                found[str(path.relative_to(library_root))] = hashlib.sha256(
                    path.read_bytes()).hexdigest()
        return found


def entry(n: int, rel: str, base: int | None = None) -> Item:
    """Content n at rel; base: the content the agent last saw there (None: nothing)."""
    return (ManifestEntry(sha(n), len(content(n)), "photos", rel, ExifSummary(width=4, height=3),
                          mtime_ns=1000 + n, base_sha256=sha(base) if base is not None else ""),
            PurePosixPath(rel))


def manifest() -> list[Item]:
    """New paths; paths whose head is the offered content (nothing new); an edit based on the
    head (a new version); a change not based on it (a conflict); one path offered twice with
    different contents (the second conflicts with the first, in the same manifest); a path the
    storage refuses; and one content at several paths."""
    items = [entry(n, f"new/{n:03d}.jpg") for n in range(20, 32)]
    items += [entry(1, "known/a.jpg"), entry(3, "known/b.jpg", base=2),
              entry(4, "known/c.jpg", base=9), entry(5, "twice.jpg"), entry(6, "twice.jpg"),
              entry(7, "x" * 300 + ".jpg"), entry(8, "dup/1.jpg"), entry(8, "dup/2.jpg")]
    items += [entry(n, f"late/{n:03d}.jpg") for n in range(40, 47)]
    return items


def prepared(root: Path, catalogs: Catalogs) -> World:
    """A library holding known/a (content 1), known/b (2) and known/c (9) before the
    manifest, and every content the manifest offers stored."""
    world = World(root, catalogs)
    world.stored(1, 2, 9, *range(3, 9), *range(20, 32), *range(40, 47))
    world.library.record_many("laptop", [entry(1, "known/a.jpg"), entry(2, "known/b.jpg"),
                                         entry(9, "known/c.jpg")], ConflictPolicy.AUTO)
    return world


def outcome_key(outcome: Outcome) -> object:
    if isinstance(outcome, errors.Unstorable):
        return ("unstorable", str(outcome))
    return outcome


@pytest.mark.parametrize("send_every", [2, 100])
@pytest.mark.parametrize("policy", list(ConflictPolicy))
def test_a_sliced_manifest_records_what_one_by_one_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: ConflictPolicy,
        send_every: int, catalogs: Catalogs) -> None:
    """Slices of 4 split the manifest (the twice-offered path across a slice boundary too):
    same answers, same rows, same library files as one record_many per path. On PostgreSQL
    the new paths' rows go out every `send_every` within a slice, or only at its end."""
    monkeypatch.setattr(library_module, "RECORD_SLICE", 4)
    monkeypatch.setattr(pg_catalog_writes, "SEND_EVERY", send_every)
    items = manifest()
    sliced = prepared(tmp_path / "sliced", catalogs)
    single = prepared(tmp_path / "single", catalogs)
    got = sliced.library.record_many("laptop", items, policy)
    want = [single.library.record_many("laptop", [item], policy)[0] for item in items]
    assert [outcome_key(o) for o in got] == [outcome_key(o) for o in want]
    assert sliced.rows() == single.rows()
    assert sliced.files() == single.files()
    # What the manifest is made to check: a refusal in the middle, conflicts within it.
    assert sum(isinstance(o, errors.Unstorable) for o in got) == 1
    twice = [o for o, (e, _rel) in zip(got, items, strict=True) if e.relative_path == "twice.jpg"]
    assert [isinstance(o, CommittedFile) and o.conflict for o in twice] == [False, True]


def test_a_manifest_longer_than_a_slice_is_recorded_in_a_commit_per_slice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalogs: Catalogs) -> None:
    """2 slices of 4 and one of 2: three write transactions for ten new paths, and every path
    is durable (the group sync ran after them) when record_many returns."""
    monkeypatch.setattr(library_module, "RECORD_SLICE", 4)
    world = World(tmp_path, catalogs)
    world.stored(*range(10))
    opened = 0
    writing = world.catalog.writing

    def counted() -> AbstractContextManager[CatalogWrites]:
        nonlocal opened
        opened += 1
        return writing()

    monkeypatch.setattr(world.catalog, "writing", counted)
    barriers = world.library.durability.barriers_run
    got = world.library.record_many("laptop", [entry(n, f"p/{n}.jpg") for n in range(10)],
                                    ConflictPolicy.AUTO)
    assert opened == 3
    assert [o.version for o in got if isinstance(o, CommittedFile)] == [1] * 10
    assert world.library.durability.barriers_run == barriers + 1
    reopened = catalogs.open(world.url)
    assert all(reopened.get_head("laptop", "photos", f"p/{n}.jpg") for n in range(10))


@pytest.mark.parametrize(("paths", "send_every"), [(6, 100), (8, 2)])
def test_a_failure_inside_a_slice_leaves_none_of_its_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalogs: Catalogs, paths: int,
        send_every: int) -> None:
    """An unexpected error (not a refused path: the last path's link fails) ends record_many;
    the slice it hit is rolled back as a whole, nothing of it answered, and the same manifest
    later records it all. With 8 paths and send_every 2, PostgreSQL has sent p/4's and p/5's
    rows before p/7 fails: the rollback takes them back too."""
    monkeypatch.setattr(library_module, "RECORD_SLICE", 4)
    monkeypatch.setattr(pg_catalog_writes, "SEND_EVERY", send_every)
    world = World(tmp_path, catalogs)
    world.stored(*range(paths))
    items = [entry(n, f"p/{n}.jpg") for n in range(paths)]
    real_link = world.store.link

    def failing(sha256: str, library_file: str, *, sync: bool = True) -> list[str]:
        if library_file.endswith(f"p/{paths - 1}.jpg"):
            raise OSError(5, "I/O error")
        return real_link(sha256, library_file, sync=sync)

    monkeypatch.setattr(world.store, "link", failing)
    with pytest.raises(OSError):
        world.library.record_many("laptop", items, ConflictPolicy.AUTO)
    heads = [world.catalog.get_head("laptop", "photos", f"p/{n}.jpg") for n in range(paths)]
    assert [h is not None for h in heads] == [True] * 4 + [False] * (paths - 4)
    assert table_rows(world.catalog, "SELECT photos FROM agent_totals") == [(4,)]
    monkeypatch.setattr(world.store, "link", real_link)
    again = world.library.record_many("laptop", items, ConflictPolicy.AUTO)
    assert [o.version for o in again if isinstance(o, CommittedFile)] == [1] * paths


def test_manifest_lookups_answer_known_and_unknown_hashes_across_the_in_limit(
        tmp_path: Path, catalogs: Catalogs) -> None:
    """1,234 hashes (over two IN lists of 500), every third one known: verified_objects,
    held_by and open_quarantine_among name exactly the known ones, whatever their order."""
    catalog = catalogs.new(tmp_path)
    hashes = [hashlib.sha256(f"h{i}".encode()).hexdigest() for i in range(1234)]
    known = hashes[::3]
    catalog.record_verified([(h, 10, 20) for h in known], durable=True)
    for i, h in enumerate(known[:700]):
        catalog.commit_version(NewVersion("laptop", "photos", f"k/{i}.jpg", h, 10,
                                          ExifSummary(), 1, f"library/laptop/k/{i}.jpg",
                                          make_head=True), durable=False)
    for h in known[::2]:
        catalog.record_quarantine(h, f"quarantine/{h}", "test")
    offered = list(reversed(hashes)) + hashes[:10]  # duplicates are asked once
    assert set(catalog.verified_objects(offered)) == set(known) - set(known[::2])
    assert catalog.held_by("laptop", offered) == set(known[:700])
    assert catalog.held_by("desktop", offered) == set()
    assert catalog.open_quarantine_among(offered) == set(known[::2])
