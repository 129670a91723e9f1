"""Promotion's path rewrite (server/promote.py) and its catalog change on a real catalog: an
archive's `library/<primary>/<agent>/<watch>/<rel>` paths get the primary's own names back,
the summaries migration 009 keeps equal a recount, and what cannot be promoted is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from photonic import errors
from photonic.models import ExifSummary
from photonic.server.catalog import NewVersion, SqliteCatalog
from photonic.server.promote import Promotion, promoted_library_path, promoted_name
from photonic.server.replication.paths import LibraryName, to_node


@pytest.mark.parametrize("name", [
    LibraryName("laptop", "photos", "img.jpg"),
    LibraryName("laptop", "photos", "2024/june/img.v1.jpg"),
    LibraryName("desk-2", "été", "ü/a b.jpg"),
])
def test_promoted_name_undoes_the_archive_naming(name: LibraryName) -> None:
    assert promoted_name(*to_node(name)) == name


@pytest.mark.parametrize("rel", ["img.jpg", "photos/", "/img.jpg"])
def test_a_path_that_is_not_watch_slash_rel_is_refused(rel: str) -> None:
    with pytest.raises(errors.InvalidInput):
        promoted_name("laptop", rel)


def test_promoted_library_path_drops_the_primary_level() -> None:
    assert promoted_library_path("primary1", "library/primary1/laptop/photos/a/b.v2.jpg") \
        == "library/laptop/photos/a/b.v2.jpg"
    for odd in ("library/other/laptop/photos/a.jpg", "library/primary1/", "primary1/x"):
        with pytest.raises(errors.InvalidInput):
            promoted_library_path("primary1", odd)


def _record(catalog: SqliteCatalog, agent: str, watch: str, rel: str, sha: str, size: int,
            version: int = 1) -> None:
    catalog.commit_version(NewVersion(
        agent_id=agent, watch_name=watch, rel_path=rel, sha256=sha, size=size,
        exif=ExifSummary(), version=version,
        library_path=f"library/{agent}/{watch}/{rel}", make_head=True))


def test_commit_rewrites_paths_and_recounts_the_summaries(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    catalog = SqliteCatalog(storage / "catalog.db")
    catalog.register_agent("primary1", "", "")
    _record(catalog, "primary1", "laptop", "photos/top.jpg", "a" * 64, 10)
    _record(catalog, "primary1", "laptop", "photos/2024/june/x.jpg", "b" * 64, 20)
    _record(catalog, "primary1", "laptop", "photos/2024/june/x.jpg", "c" * 64, 25, 2)
    _record(catalog, "primary1", "desk", "pics/y.jpg", "d" * 64, 30)
    catalog.close()

    promotion = Promotion(storage)
    plan = promotion.plan("primary1")
    assert [(a.agent_id, a.paths, a.versions, a.head_bytes) for a in plan.agents] == \
        [("desk", 1, 1, 30), ("laptop", 2, 3, 35)]
    promotion.commit(plan)
    assert {(r.source, r.target) for r in promotion.pending_renames()} == {
        ("library/primary1/desk", "library/desk"),
        ("library/primary1/laptop", "library/laptop")}
    assert promotion.finish_renames()  # nothing on disk here: struck off all the same
    assert promotion.pending_renames() == []
    assert promotion.plan("primary1").agents == ()
    promotion.close()

    catalog = SqliteCatalog(storage / "catalog.db")
    assert catalog.agent_ids() == ["desk", "laptop"]
    assert {a: catalog.agent_totals(a) for a in ("desk", "laptop", "primary1")} == \
        {"desk": (1, 30), "laptop": (2, 35), "primary1": (0, 0)}
    assert catalog.recounted_totals() == {"desk": (1, 30), "laptop": (2, 35)}
    assert catalog.child_folders("laptop", "photos", "", 10) == ["2024"]
    assert catalog.child_folders("laptop", "photos", "2024", 10) == ["june"]
    assert catalog.child_folders("primary1", "laptop", "", 10) == []
    head = catalog.get_head("laptop", "photos", "2024/june/x.jpg")
    assert head is not None and (head.head_version, head.head_sha256) == (2, "c" * 64)
    assert head.head_library_path == "library/laptop/photos/2024/june/x.jpg"
    assert [p.rel_path for p in catalog.folder_photos("laptop", "photos", "2024/june", 10)] \
        == ["2024/june/x.jpg"]
    catalog.close()


def test_encrypted_copies_and_taken_names_are_refused(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    catalog = SqliteCatalog(storage / "catalog.db")
    _record(catalog, "primary1", "sealed", "objects/ab", "a" * 64, 10)
    _record(catalog, "primary2", "laptop", "photos/x.jpg", "b" * 64, 10)
    catalog.close()
    promotion = Promotion(storage)
    with pytest.raises(errors.InvalidInput, match=r"encrypted.*restore"):
        promotion.plan("primary1")
    (storage / "library" / "laptop").mkdir(parents=True)
    with pytest.raises(errors.InvalidInput, match="exists already"):
        promotion.plan("primary2")
    promotion.close()
