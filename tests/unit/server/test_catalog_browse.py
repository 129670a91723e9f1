"""The catalog's maintained summaries (catalog_browse.py) on a real store, catalog and library:
per-agent totals and the folder tree stay equal to a full recount from the rows after any mix
of new paths, new versions, conflicts under each policy and their resolutions (a fixed
sequence and hypothesis-generated ones); migration 009 backfills the same values from an
older catalog; and a library level read through them answers exactly what reading every path
beneath it answered. Every test but the SQLite migration's runs on both catalog engines
(SQLite, PostgreSQL), whose summaries are kept by different statements."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from photonic import errors
from photonic.models import ConflictPolicy, ContentHash, ExifSummary, ManifestEntry
from photonic.server.catalog import Catalog, NewVersion, SqliteCatalog
from photonic.server.library import Library
from photonic.server.library_browse import LibraryBrowser, LibraryLevel, LibraryPhoto
from photonic.server.store import ContentStore
from tests.support.catalogs import Catalogs, table_rows

PATHS = ("top.jpg", "2024/a.jpg", "2024/b.jpg", "2024/rome/c.jpg", "2024-x/d.jpg",
         "2024/rome/deep/er/e.jpg", "été/ü.jpg")


def content(n: int) -> bytes:
    """Distinct contents of distinct sizes."""
    return f"photo-{n}|".encode() * (n + 1)


class World:
    def __init__(self, root: Path, catalogs: Catalogs) -> None:
        self.store = ContentStore(root / "storage")
        self.catalog = catalogs.new(root / "storage")
        self.library = Library(self.store, self.catalog, None)

    def put(self, agent: str, rel: str, n: int, policy: ConflictPolicy = ConflictPolicy.AUTO,
            *, based: bool = True, watch: str = "photos") -> None:
        """Content n at rel; based: the agent saw the current head (no conflict)."""
        data = content(n)
        sha = ContentHash(hashlib.sha256(data).hexdigest())
        if not self.store.has_object(sha):
            upload = self.store.open_partial(sha, len(data), resume=False)
            upload.append(data)
            self.store.commit(upload, sync=False)
        head = self.catalog.get_head(agent, watch, rel)
        base = head.head_sha256 if head is not None and based else ""
        entry = ManifestEntry(sha, len(data), watch, rel, ExifSummary(width=4, height=3),
                              mtime_ns=n, base_sha256=base)
        self.library.record_many(agent, [(entry, PurePosixPath(rel))], policy)

    def commit_without_head(self, agent: str, rel: str, n: int) -> None:
        """A path's first version committed straight to the catalog with make_head unset
        (the library never does that; the catalog still makes it the head)."""
        data = content(n)
        self.catalog.commit_version(NewVersion(
            agent, "photos", rel, hashlib.sha256(data).hexdigest(), len(data), ExifSummary(),
            1, f"{agent}/photos/{rel}", False), durable=False)

    def resolve(self, pick: int, keep_incoming: bool) -> None:
        open_ = self.catalog.open_conflicts(None)
        if open_:
            self.library.resolve(open_[pick % len(open_)].id, keep_incoming)

    def assert_summaries_match_recount(self) -> None:
        recount = self.catalog.recounted_totals()
        for agent in {*recount, "a", "b"}:
            assert self.catalog.agent_totals(agent) == recount.get(agent, (0, 0)), agent
        assert folder_rows(self.catalog) == recounted_folders(self.catalog)

    def close(self) -> None:
        self.catalog.close()


def folder_rows(catalog: Catalog) -> set[tuple[str, str, str, str]]:
    return {(str(a), str(w), str(p), str(n)) for a, w, p, n in table_rows(
        catalog, "SELECT agent_id, watch_name, parent, name FROM library_folders")}


def recounted_folders(catalog: Catalog) -> set[tuple[str, str, str, str]]:
    """Every folder above any path, from the paths themselves."""
    found: set[tuple[str, str, str, str]] = set()
    for agent, watch, rel in table_rows(
            catalog, "SELECT agent_id, watch_name, rel_path FROM locations"):
        parts = str(rel).split("/")[:-1]
        for depth in range(len(parts)):
            found.add((agent, watch, "/".join(parts[:depth]), parts[depth]))
    return found


def scanned_level(catalog: Catalog, agent: str, watch: str, sub: str) -> LibraryLevel:
    """The level as it was computed before the folder tree: every head beneath, then its
    direct children (the reference the new reads must equal)."""
    heads = catalog.heads_with_ids(agent, watch, sub, 1_000_000)
    if not heads:
        raise errors.NotFound(sub)
    skip = len(sub) + 1 if sub else 0
    mtimes = {int(i): int(m) for i, m in table_rows(
        catalog, "SELECT l.id, v.mtime_ns FROM locations l "
        "JOIN versions v ON v.location_id = l.id AND v.version = l.head_version")}
    folders: dict[str, None] = {}
    photos: list[LibraryPhoto] = []
    for loc_id, head in heads:
        rest = head.rel_path[skip:]
        if "/" in rest:
            folders[rest.split("/", 1)[0]] = None
            continue
        taken = (head.capture_time_ms if head.capture_time_ms > 0
                 else mtimes[loc_id] // 1_000_000)
        photos.append(LibraryPhoto(loc_id, rest, f"{agent}/{watch}/{head.rel_path}",
                                   head.sha256, head.size, head.pixels, head.capture_time_ms,
                                   taken))
    here = "/".join(p for p in (agent, watch, sub) if p)
    return LibraryLevel(here, tuple(folders), tuple(photos), False)


def assert_levels_match_scan(world: World) -> None:
    browser = LibraryBrowser(world.catalog)
    for agent, watch, parent, name in folder_rows(world.catalog) | {
            (str(a), str(w), "", "") for a, w in table_rows(
                world.catalog, "SELECT DISTINCT agent_id, watch_name FROM locations")}:
        sub = f"{parent}/{name}".strip("/")
        parts = [agent, watch, *(sub.split("/") if sub else [])]
        assert browser._level(parts) == scanned_level(world.catalog, agent, watch, sub)


@pytest.fixture
def world(tmp_path: Path, catalogs: Catalogs) -> Iterator[World]:
    w = World(tmp_path, catalogs)
    yield w
    w.close()


def test_totals_and_folders_follow_commits_versions_conflicts_and_resolutions(
        world: World) -> None:
    """Each step that changes a head (a new path, a new version, a conflict kept by the
    server or won by the incoming side, a parked conflict resolved either way, the same
    content sent again) leaves the maintained totals and folders equal to the recount."""
    steps: list[Callable[[], None]] = [
        lambda: world.put("a", "2024/a.jpg", 1),
        lambda: world.put("a", "2024/rome/c.jpg", 2),
        lambda: world.put("b", "top.jpg", 3),
        lambda: world.put("a", "2024/a.jpg", 4),  # a new version: bytes change, count not
        lambda: world.put("a", "2024/a.jpg", 4),  # the same again: nothing changes
        lambda: world.put("a", "2024/a.jpg", 5, ConflictPolicy.SERVER_WINS, based=False),
        lambda: world.put("a", "2024/a.jpg", 6, ConflictPolicy.AUTO, based=False),
        lambda: world.put("a", "2024/rome/c.jpg", 7, ConflictPolicy.MANUAL, based=False),
        lambda: world.put("a", "2024/rome/c.jpg", 8, ConflictPolicy.MANUAL, based=False),
        lambda: world.resolve(0, keep_incoming=True),
        lambda: world.resolve(0, keep_incoming=False),
        lambda: world.put("b", "été/ü.jpg", 9),
        lambda: world.put("a", "2024/rome/deep/er/e.jpg", 1),  # content already stored
        lambda: world.commit_without_head("b", "side/f.jpg", 3),
    ]
    for step in steps:
        step()
        world.assert_summaries_match_recount()
    assert world.catalog.agent_totals("b") == (3, 2 * len(content(3)) + len(content(9)))
    assert world.catalog.agent_totals("a") == (
        3, len(content(6)) + len(content(7)) + len(content(1)))
    assert world.catalog.agent_totals("nobody") == (0, 0)
    assert_levels_match_scan(world)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.tuples(st.just("put"), st.sampled_from(["a", "b"]), st.sampled_from(PATHS),
              st.integers(0, 6), st.sampled_from(list(ConflictPolicy)), st.booleans()),
    st.tuples(st.just("resolve"), st.integers(0, 5), st.booleans())), max_size=25))
def test_any_sequence_keeps_the_summaries_equal_to_a_recount(
        catalogs: Catalogs, ops: list[tuple[object, ...]]) -> None:
    """Whatever the order of commits, versions, conflicts (every policy, based or not) and
    resolutions, the maintained totals and folder tree equal the full recount, and every
    level lists what a scan of every path beneath it lists."""
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp), catalogs)  # a fresh catalog for each example
        try:
            for op in ops:
                if op[0] == "put":
                    _, agent, rel, n, policy, based = op
                    assert isinstance(policy, ConflictPolicy)
                    world.put(str(agent), str(rel), int(str(n)), policy, based=bool(based))
                else:
                    world.resolve(int(str(op[1])), keep_incoming=bool(op[2]))
            world.assert_summaries_match_recount()
            assert_levels_match_scan(world)
        finally:
            world.close()


def test_migration_backfills_what_commits_maintain(tmp_path: Path) -> None:
    """A catalog from before migration 009 (its tables and column removed again) gets, from
    the migration's backfill, the same totals, folders and path folders that the commits
    had maintained: names with '-', non-ASCII names, deep folders, top-level photos."""
    world = World(tmp_path, Catalogs("sqlite", None))
    for n, rel in enumerate(PATHS):
        world.put("a", rel, n)
        world.put("b", rel, n + 1, watch="other")
    world.put("a", "2024/a.jpg", 9)
    maintained = (world.catalog.recounted_totals(), folder_rows(world.catalog),
                  _path_folders(sqlite_of(world.catalog)._conn))
    world.close()
    db = tmp_path / "storage" / "catalog.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            # and every table later migrations made, since the runner resumes after the
            # highest (those of 010 onwards, read from their files: none is hand-listed)
            "".join(f"DROP TABLE IF EXISTS {t}; " for t in _tables_made_after(9))
            + "DROP TABLE agent_totals; DROP TABLE library_folders; "
            "DROP INDEX locations_by_folder; ALTER TABLE locations DROP COLUMN folder; "
            "DELETE FROM schema_version WHERE version >= 9;")
    catalog = SqliteCatalog(db)
    try:
        assert {a: catalog.agent_totals(a) for a in ("a", "b")} == maintained[0]
        assert folder_rows(catalog) == maintained[1]
        assert _path_folders(catalog._conn) == maintained[2]
        assert ("a", "photos", "", "été") in maintained[1]
        assert ("a", "photos", "2024/rome/deep", "er") in maintained[1]
    finally:
        catalog.close()


def sqlite_of(catalog: Catalog) -> SqliteCatalog:
    assert isinstance(catalog, SqliteCatalog)
    return catalog


def _path_folders(conn: sqlite3.Connection) -> dict[str, str]:
    rows = conn.execute("SELECT agent_id || ':' || watch_name || ':' || rel_path, folder "
                        "FROM locations").fetchall()
    assert all(folder == rel.rpartition(":")[2].rpartition("/")[0] for rel, folder in rows)
    return dict(rows)


def test_a_level_lists_direct_children_only_and_truncates(world: World) -> None:
    """A level shows its direct subfolders (in path order) and photos; beyond the browser's
    limit it lists that many and says truncated; an unknown folder is NotFound."""
    for n, rel in enumerate(["2024/x.jpg", "2024/y.jpg", "2024/z.jpg", "2024/a/1.jpg",
                             "2024/a-b/2.jpg", "2024/a/deeper/3.jpg"]):
        world.put("a", rel, n)
    level = LibraryBrowser(world.catalog)._level(["a", "photos", "2024"])
    assert level.folders == ("a-b", "a")
    assert [p.name for p in level.photos] == ["x.jpg", "y.jpg", "z.jpg"]
    assert not level.truncated
    small = LibraryBrowser(world.catalog, max_listed=2)._level(["a", "photos", "2024"])
    assert [p.name for p in small.photos] == ["x.jpg", "y.jpg"] and small.truncated
    top = LibraryBrowser(world.catalog)._level(["a", "photos"])
    assert top.folders == ("2024",) and top.photos == ()
    assert LibraryBrowser(world.catalog)._level([]).folders == ("a",)
    assert LibraryBrowser(world.catalog)._level(["a"]).folders == ("photos",)
    for missing in (["a", "photos", "2025"], ["a", "photos", "2024", "x.jpg"],
                    ["a", "nothing"], ["nobody"]):
        with pytest.raises(errors.NotFound):
            LibraryBrowser(world.catalog)._level(missing)


def _tables_made_after(version: int) -> list[str]:
    """Tables the catalog's migrations numbered above version create, newest first."""
    folder = resources.files("photonic.server.migrations")
    made: list[str] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name, reverse=True):
        if entry.name.endswith(".sql") and int(entry.name[:3]) > version:
            made += re.findall(r"CREATE TABLE(?: IF NOT EXISTS)? (\w+)",
                               entry.read_text(encoding="utf-8"))
    return made
