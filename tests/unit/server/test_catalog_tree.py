"""The catalog's file-tree reads on a real catalog filled by the real Library: a folder's
versions in keyset pages (every version once, across page ends inside one path's versions),
subfolders by name after a cursor, and one file found by its name in the tree, including a
real file named like a version (whose versions then take `~k` names) and a version whose
name was shortened to fit (the folder fallback)."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

import pytest

from photonic.models import ConflictPolicy, ContentHash, ManifestEntry
from photonic.server.catalog import Catalog
from photonic.server.catalog_tree import unversioned_candidates
from photonic.server.library import Library
from photonic.server.store import ContentStore
from tests.support.catalogs import Catalogs


class Tree:
    def __init__(self, root: Path, catalog: Catalog) -> None:
        self.store = ContentStore(root)
        self.catalog = catalog
        self.library = Library(self.store, self.catalog, None)

    def put(self, rel: str, content: bytes) -> str:
        sha = hashlib.sha256(content).hexdigest()
        if not self.store.has_object(sha):
            upload = self.store.open_partial(ContentHash(sha), len(content), resume=False)
            upload.append(content)
            self.store.commit(upload)
        entry = ManifestEntry(ContentHash(sha), len(content), "photos", rel)
        self.library.record_many("laptop", [(entry, PurePosixPath(rel))], ConflictPolicy.AUTO)
        return sha

    def on_disk(self, folder: str) -> set[str]:
        return {p.name for p in (self.store.library / "laptop/photos" / folder).iterdir()
                if p.is_file()}


@pytest.fixture
def tree(tmp_path: Path, catalogs: Catalogs) -> Tree:
    """On either catalog engine: the tree's reads are one set of statements for both."""
    return Tree(tmp_path / "storage", catalogs.new(tmp_path / "storage"))


def test_version_names_point_back_to_their_path() -> None:
    assert unversioned_candidates("2024", "a.v3.jpg") == ["2024/a.v3.jpg", "2024/a.jpg"]
    assert unversioned_candidates("", "a.tar.v2~1.gz") == ["a.tar.v2~1.gz", "a.tar.gz"]
    assert unversioned_candidates("", "README.v2") == ["README.v2", "README"]
    assert unversioned_candidates("", "a.jpg") == ["a.jpg"]


def test_pages_list_every_version_once_as_on_disk(tree: Tree) -> None:
    """Pages of two rows end inside a path's three versions; together they are the
    folder's files on disk."""
    for i in range(3):
        tree.put("f/a.jpg", b"a%d" % i)
    tree.put("f/b.jpg", b"b")
    tree.put("f/sub/c.jpg", b"c")
    names: list[str] = []
    after = None
    while page := tree.catalog.folder_files_page("laptop", "photos", "f", after, 2):
        names += [f.name for f in page]
        after = (page[-1].rel_path, page[-1].version)
    assert sorted(names) == sorted(tree.on_disk("f")) == ["a.jpg", "a.v1.jpg", "a.v2.jpg",
                                                          "b.jpg"]
    assert tree.catalog.child_folders_after("laptop", "photos", "f", "", 10) == ["sub"]
    assert tree.catalog.child_folders_after("laptop", "photos", "f", "sub", 10) == []


def test_a_file_is_found_by_its_tree_name(tree: Tree) -> None:
    """Heads, older versions, a real file named like a version and the `~1` version its
    name pushed aside each resolve to their own content; other names to nothing."""
    old = tree.put("a.v1.jpg", b"a real file with a version-like name")
    first = tree.put("a.jpg", b"first")
    second = tree.put("a.jpg", b"second")
    assert tree.on_disk("") == {"a.v1.jpg", "a.jpg", "a.v1~1.jpg"}
    found = {n: tree.catalog.tree_file("laptop", "photos", "", n) for n in tree.on_disk("")}
    assert {n: (f.sha256 if f else None) for n, f in found.items()} == {
        "a.v1.jpg": old, "a.jpg": second, "a.v1~1.jpg": first}
    assert tree.catalog.tree_file("laptop", "photos", "", "a.v9.jpg") is None
    assert tree.catalog.tree_file("laptop", "photos", "", "b.jpg") is None
    assert tree.catalog.tree_file("laptop", "photos", "elsewhere", "a.jpg") is None


def test_a_shortened_version_name_is_found_through_its_folder(tree: Tree) -> None:
    long_name = "x" * 250 + ".jpg"
    first = tree.put(f"f/{long_name}", b"one")
    tree.put(f"f/{long_name}", b"two")
    [shortened] = tree.on_disk("f") - {long_name}
    assert len(shortened) < len(long_name)
    found = tree.catalog.tree_file("laptop", "photos", "f", shortened)
    assert found is not None and found.sha256 == first
