"""The replication queue on a real catalog, the path mapping, and the replication config."""

from __future__ import annotations

from pathlib import Path

import pytest

from photonic.config import ServerRole, load_server_config
from photonic.errors import InvalidInput
from photonic.models import ContentHash, ExifSummary
from photonic.server.catalog import NewVersion, SqliteCatalog
from photonic.server.replication.paths import LibraryName, from_node, to_node
from photonic.server.replication.queue import ReplicationQueue


def sha(n: int) -> ContentHash:
    return ContentHash(f"{n:064x}")


def commit(catalog: SqliteCatalog, agent: str, watch: str, rel: str, content: int,
           version: int, size: int = 100) -> None:
    catalog.commit_version(NewVersion(
        agent_id=agent, watch_name=watch, rel_path=rel, sha256=sha(content), size=size,
        exif=ExifSummary(capture_time_unix_ms=1000 + content, camera_model="X100"),
        version=version, library_path=f"{agent}/{watch}/{rel}", make_head=True,
        mtime_ns=content * 10))


@pytest.fixture
def catalog(tmp_path: Path) -> SqliteCatalog:
    return SqliteCatalog(tmp_path / "catalog.db")


def test_pending_is_every_version_a_node_lacks_one_per_path_oldest_first(
        tmp_path: Path, catalog: SqliteCatalog) -> None:
    """A path's second version waits until its first is confirmed, and then carries the
    first's content as its base, so the node records a version, not a conflict."""
    commit(catalog, "laptop", "photos", "a.jpg", 1, 1)
    commit(catalog, "laptop", "photos", "b.jpg", 2, 1)
    commit(catalog, "laptop", "photos", "a.jpg", 3, 2)
    queue = ReplicationQueue(tmp_path / "catalog.db", ["arch"])
    first = queue.pending("arch", 10, 10**9)
    assert [(p.name.rel_path, p.version) for p in first] == [("a.jpg", 1), ("b.jpg", 1)]
    assert first[0].base_sha256 == "" and first[0].exif.camera == "X100"
    assert first[0].mtime_ns == 10
    queue.confirm("arch", first)
    second = queue.pending("arch", 10, 10**9)
    assert [(p.name.rel_path, p.version, p.base_sha256) for p in second] == [
        ("a.jpg", 2, sha(1))]
    queue.confirm("arch", second)
    assert queue.pending("arch", 10, 10**9) == []
    assert queue.pending("other", 10, 10**9)[0].name.rel_path == "a.jpg"


def test_batches_are_bounded_by_count_and_bytes(tmp_path: Path,
                                                 catalog: SqliteCatalog) -> None:
    """A batch stops at its file count or once the next file would pass its bytes (but
    always holds at least one file, however large)."""
    for n in range(10):
        commit(catalog, "laptop", "photos", f"{n}.jpg", n + 1, 1, size=1000)
    queue = ReplicationQueue(tmp_path / "catalog.db", ["arch"])
    assert len(queue.pending("arch", 3, 10**9)) == 3
    assert len(queue.pending("arch", 100, 2500)) == 2
    assert len(queue.pending("arch", 100, 10)) == 1


def test_skipped_versions_hold_back_their_path_only(tmp_path: Path,
                                                     catalog: SqliteCatalog) -> None:
    """A version given up on is not offered, nor any later version of its path."""
    commit(catalog, "laptop", "photos", "a.jpg", 1, 1)
    commit(catalog, "laptop", "photos", "a.jpg", 2, 2)
    commit(catalog, "laptop", "photos", "b.jpg", 3, 1)
    queue = ReplicationQueue(tmp_path / "catalog.db", ["arch"])
    location_a = queue.pending("arch", 10, 10**9)[0].location_id
    found = queue.pending("arch", 10, 10**9, frozenset({(location_a, 1)}))
    assert [p.name.rel_path for p in found] == ["b.jpg"]


def test_backlog_and_copies_count_confirmed_content(tmp_path: Path,
                                                     catalog: SqliteCatalog) -> None:
    """Bytes pending count each content once and not content the node holds already (a
    second path of confirmed content costs no bytes); copies count configured nodes only."""
    commit(catalog, "laptop", "photos", "a.jpg", 1, 1, size=100)
    commit(catalog, "laptop", "photos", "b.jpg", 2, 1, size=200)
    commit(catalog, "laptop", "photos", "c.jpg", 2, 1, size=200)
    queue = ReplicationQueue(tmp_path / "catalog.db", ["arch", "offsite"])
    backlog = queue.backlog("arch")
    assert (backlog.versions, backlog.bytes_pending) == (3, 300)
    assert backlog.oldest_created_ms > 0
    queue.confirm("arch", queue.pending("arch", 2, 10**9))  # a.jpg and b.jpg
    backlog = queue.backlog("arch")
    assert (backlog.versions, backlog.bytes_pending) == (1, 0)  # c.jpg: content held
    queue.confirm("gone", queue.pending("gone", 10, 10**9))
    assert queue.copies_of([sha(1), sha(2), sha(9)]) == {sha(1): 2, sha(2): 2, sha(9): 1}
    queue.confirm("offsite", queue.pending("offsite", 10, 10**9))
    assert queue.copies_of([sha(1)]) == {sha(1): 3}
    assert queue.backlog("offsite").oldest_created_ms == 0


def test_confirmations_survive_a_reopen(tmp_path: Path, catalog: SqliteCatalog) -> None:
    """Confirmed is durable: a restarted server does not offer the version again."""
    commit(catalog, "laptop", "photos", "a.jpg", 1, 1)
    queue = ReplicationQueue(tmp_path / "catalog.db", ["arch"])
    queue.confirm("arch", queue.pending("arch", 10, 10**9))
    queue.close()
    assert ReplicationQueue(tmp_path / "catalog.db", ["arch"]).pending("arch", 10, 10**9) == []


@pytest.mark.parametrize("name", [
    LibraryName("laptop", "photos", "2024/a.jpg"),
    LibraryName("_derived", "bgremove", "laptop/photos/a.png"),
    LibraryName("mac.studio-1", "Card 1", "DCIM/100/x y.NEF"),
])
def test_library_names_map_to_the_node_and_back(name: LibraryName) -> None:
    """The node is offered watch <agent> and path <watch>/<rel>: a single-name watch, and
    the mapping comes back exactly (what promoting an archive node needs)."""
    watch, rel = to_node(name)
    assert "/" not in watch
    assert from_node(watch, rel) == name


def test_a_path_that_was_not_replicated_is_refused_by_the_reverse_mapping() -> None:
    with pytest.raises(InvalidInput):
        from_node("laptop", "a.jpg")


def test_replication_config(tmp_path: Path) -> None:
    """role, nodes with rate and schedule, and min_copies defaulting to 2 with a node."""
    path = tmp_path / "server.yaml"
    path.write_text(
        "server: {storage_path: s, role: archive}\n"
        "storage:\n  backup_nodes:\n"
        "    - {name: closet, endpoint: '10.0.0.2:50051', max_bandwidth: 5MB/s,\n"
        "       schedule: ['22:00-06:00']}\n"
        "security: {cert_path: a, key_path: b, ca_path: c}\n", encoding="utf-8")
    config = load_server_config(path)
    assert config.replication.role is ServerRole.ARCHIVE
    (node,) = config.replication.backup_nodes
    assert (node.name, node.endpoint, node.max_bandwidth_bytes_per_s) == (
        "closet", "10.0.0.2:50051", 5_000_000)
    assert node.open_at(23 * 60) and node.open_at(60) and not node.open_at(12 * 60)
    assert config.replication.min_copies == 2
    assert config.backup_nodes == config.replication.backup_nodes


def test_safe_heads_count_current_versions_with_enough_copies(
        tmp_path: Path, catalog: SqliteCatalog) -> None:
    """What `photonic status --remote` reports: an agent's current versions whose content
    this store and the configured nodes hold at least min_copies times."""
    commit(catalog, "laptop", "photos", "a.jpg", 1, 1)
    commit(catalog, "laptop", "photos", "b.jpg", 2, 1)
    commit(catalog, "desktop", "photos", "c.jpg", 3, 1)
    queue = ReplicationQueue(tmp_path / "catalog.db", ["arch"])
    assert queue.safe_heads("laptop", 2) == 0
    assert queue.safe_heads("laptop", 1) == 2
    queue.confirm("arch", [p for p in queue.pending("arch", 10, 10**9)
                           if p.name.rel_path == "a.jpg"])
    assert queue.safe_heads("laptop", 2) == 1
    assert queue.safe_heads("desktop", 2) == 0
