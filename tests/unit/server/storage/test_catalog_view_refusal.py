"""The library of an S3 store (CatalogView) is still a tree: a photo whose path is a recorded
file's folder, or a folder of recorded photos, is refused with the local store's sentence,
across manifests and within one, on both catalog engines. Found by the scale-out run of
tests/e2e/test_unstorable_e2e.py: the S3 server recorded `dir/a.jpg` and `dir/a.jpg/b.jpg`
both, a tree no WebDAV client can show."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from photonic import errors
from photonic.models import CommittedFile, ConflictPolicy, ContentHash, ManifestEntry
from photonic.server.library import Library
from photonic.server.storage.tree import CatalogView
from tests.support.catalogs import Catalogs


def _entry(rel: str) -> tuple[ManifestEntry, PurePosixPath]:
    sha = ContentHash(hashlib.sha256(rel.encode()).hexdigest())
    return ManifestEntry(sha256=sha, size=10, watch_name="photos", relative_path=rel), \
        PurePosixPath(rel)


def _library(tmp_path: Path, catalogs: Catalogs) -> Library:
    catalog = catalogs.new(tmp_path)
    return Library(CatalogView(catalog), catalog, None)


def _reasons(outcomes: list[CommittedFile | errors.Unstorable]) -> list[str]:
    return [str(o) if isinstance(o, errors.Unstorable) else "recorded" for o in outcomes]


def test_a_file_where_a_folder_would_be_and_a_folder_where_a_file_would_be_are_refused(
        tmp_path: Path, catalogs: Catalogs) -> None:
    """dir/a.jpg recorded: dir/a.jpg/b.jpg is refused (a file stands where its folder would
    be); sub/x.jpg recorded: sub is refused (a folder stands there); both are answered with
    the sentence a local store gives, and other paths are recorded."""
    library = _library(tmp_path, catalogs)
    first = library.record_many("laptop", [_entry("dir/a.jpg"), _entry("sub/x.jpg")],
                                ConflictPolicy.AUTO)
    assert _reasons(first) == ["recorded", "recorded"]
    second = library.record_many("laptop", [_entry("dir/a.jpg/b.jpg"), _entry("sub"),
                                            _entry("dir/c.jpg")], ConflictPolicy.AUTO)
    assert _reasons(second) == [
        "the server cannot store a photo at this path: a file of the same name stands where "
        "one of its folders would be; rename the file or its folder",
        "the server cannot store a photo at this path: a folder of the same name stands "
        "there; rename the file or its folder",
        "recorded"]
    again = library.record_many("laptop", [_entry("dir/a.jpg")], ConflictPolicy.AUTO)
    assert _reasons(again) == ["recorded"]  # the recorded path itself is not refused


def test_within_one_manifest_the_first_of_two_clashing_paths_wins(
        tmp_path: Path, catalogs: Catalogs) -> None:
    """A manifest naming x.jpg and x.jpg/y.jpg (and the other way round in another watch's
    folder) records the first and refuses the second; another agent's tree is its own."""
    library = _library(tmp_path, catalogs)
    outcomes = library.record_many("laptop", [
        _entry("x.jpg"), _entry("x.jpg/y.jpg"), _entry("f/g/h.jpg"), _entry("f/g")],
        ConflictPolicy.AUTO)
    assert [r.split(":")[0] for r in _reasons(outcomes)] == [
        "recorded", "the server cannot store a photo at this path", "recorded",
        "the server cannot store a photo at this path"]
    other = library.record_many("desktop", [_entry("x.jpg/y.jpg")], ConflictPolicy.AUTO)
    assert _reasons(other) == ["recorded"]
