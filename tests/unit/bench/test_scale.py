"""The scale benchmark: its cache keys and their reuse, and a tiny real run of each figure (the
agent's first scan, a restart over the synced index, manifest checks over a seeded catalog)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from bench import datagen, scale, scale_catalog, scale_index
from bench.datagen import FileKind, SetSpec
from bench.peers.photonic import PhotonicPeer
from bench.report import build_rows

TINY = SetSpec("scale-tiny", FileKind.TINY, 300)
WATCH = "photos"


@pytest.fixture
def tiny_set(tmp_path: Path) -> datagen.DataSet:
    return datagen.ensure_set(TINY, cache_dir=tmp_path / "data")


def test_migration_version_is_the_newest_numbered_script() -> None:
    """The agent's schema version is its highest migration number, as the runner applies."""
    from importlib.resources import files

    numbers = [int(e.name[:3]) for e in files(scale_index.AGENT_MIGRATIONS).iterdir()
               if e.name.endswith(".sql")]
    assert scale_index.migration_version(scale_index.AGENT_MIGRATIONS) == max(numbers)


def test_index_key_follows_schema_version_code_and_the_set_on_disk(
        tiny_set: datagen.DataSet, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same set, same schema: same key. A new agent migration, a new INDEX_VERSION or a
    regenerated set (its manifest rewritten: new inode or mtime) each give a new key."""
    key = scale_index.index_key(tiny_set.root, WATCH)
    assert scale_index.index_key(tiny_set.root, WATCH) == key
    assert scale_index.index_key(tiny_set.root, "other") != key
    with monkeypatch.context() as m:
        m.setattr(scale_index, "migration_version", lambda _package: 99)
        assert scale_index.index_key(tiny_set.root, WATCH) != key
    with monkeypatch.context() as m:
        m.setattr(scale_index, "INDEX_VERSION", scale_index.INDEX_VERSION + 1)
        assert scale_index.index_key(tiny_set.root, WATCH) != key
    manifest = tiny_set.root / "manifest.json"
    text = manifest.read_text()
    manifest.unlink()
    manifest.write_text(text)
    os.utime(manifest, ns=(1, 1))
    assert scale_index.index_key(tiny_set.root, WATCH) != key


def test_catalog_key_follows_photos_schema_version_and_seed_version(
        monkeypatch: pytest.MonkeyPatch) -> None:
    key = scale_catalog.catalog_key(1000)
    assert scale_catalog.catalog_key(1000) == key
    assert scale_catalog.catalog_key(1001) != key
    with monkeypatch.context() as m:
        m.setattr(scale_catalog, "migration_version", lambda _package: 99)
        assert scale_catalog.catalog_key(1000) != key
    with monkeypatch.context() as m:
        m.setattr(scale_catalog, "SEED_VERSION", scale_catalog.SEED_VERSION + 1)
        assert scale_catalog.catalog_key(1000) != key


def test_catalog_is_seeded_once_reused_and_installed_between_scrub_passes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seeded catalog holds every synthetic photo once, in the server's schema; a second
    ensure reuses it without seeding; a new seed version seeds again; an installed copy
    records a scrub pass that just ended (so the server starts none over fake rows)."""
    cached = scale_catalog.ensure_catalog(500, tmp_path / "cache")
    conn = sqlite3.connect(cached)
    try:
        shas = [r[0] for r in conn.execute("SELECT sha256 FROM photos ORDER BY rowid")]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert sorted(shas) == sorted(scale_catalog.synthetic_hash(i) for i in range(500))
    assert shas == sorted(shas)  # inserted in hash order, every B-tree appended to

    def no_seeding(_path: Path, _photos: int) -> None:
        raise AssertionError("seeded again")

    with monkeypatch.context() as m:
        m.setattr(scale_catalog, "seed_catalog", no_seeding)
        assert scale_catalog.ensure_catalog(500, tmp_path / "cache") == cached
    mtime = cached.stat().st_mtime_ns
    monkeypatch.setattr(scale_catalog, "SEED_VERSION", scale_catalog.SEED_VERSION + 1)
    assert scale_catalog.ensure_catalog(500, tmp_path / "cache") == cached
    assert cached.stat().st_mtime_ns != mtime
    installed = scale_catalog.install_catalog(cached, tmp_path / "storage")
    conn = sqlite3.connect(installed)
    try:
        started, in_pass, completed = conn.execute(
            "SELECT pass_started_ms, in_pass, last_completed_ms FROM scrub_progress").fetchone()
    finally:
        conn.close()
    assert started > 0 and in_pass == 0 and completed == started


def test_figure_specs_cover_every_value_and_judge_the_goals() -> None:
    """Every value the scale figures record has a row or is an extra in the JSON only; the
    goals are <= 20 s and <= 300 MB for the restart, <= 100 ms per manifest."""
    specs = scale.scale_figure_specs(1_000_000, 10_000_000)
    keys = {s.key for s in specs}
    assert {"scale.first_scan.files_per_s", "scale.first_scan.rss_mb", "scale.restart.s",
            "scale.restart.rss_mb", "scale.manifest.new_ms",
            "scale.manifest.stored_ms"} <= keys
    samples = {("photonic", "scale.restart.s"): [12.0], ("photonic", "scale.restart.rss_mb"):
               [320.0], ("photonic", "scale.manifest.stored_ms"): [80.0, 120.0, 90.0]}
    rows = {r.figure: r for r in build_rows(specs, samples)}
    assert rows["agent restart, 1,000,000-file index, nothing changed"].met is True
    assert rows["agent peak RSS, restart over 1,000,000-file index"].met is False
    assert rows["manifest check, 1,000 stored files, catalog of 10,000,000"].met is True
    assert scale.scale_shape(quick=False) == scale.ScaleShape(1_000_000, 10_000_000, 5)
    assert scale.scale_shape(quick=True).files < 1_000_000


def test_a_tiny_first_scan_is_measured_and_kept_as_the_synced_index(
        tmp_path: Path, tiny_set: datagen.DataSet) -> None:
    """The probe (the agent's own AgentApp, no server) hashes and queues every file; its
    database, every file acknowledged, becomes the cached index, trusted while the files
    keep their signatures and not once one of them changed."""
    cache = tmp_path / "data"
    figure = scale.first_scan(tmp_path / "work", tiny_set, cache_dir=cache)
    assert figure.scan.files_hashed == tiny_set.count + 1  # with the set's manifest.json
    values = scale.first_scan_values(figure)
    assert values["scale.first_scan.files_per_s"][0] > 0
    assert values["scale.first_scan.rss_mb"][0] > 0
    index = scale_index.cached_index(tiny_set, WATCH, cache)
    assert index is not None
    conn = sqlite3.connect(index)
    try:
        assert conn.execute("SELECT COUNT(*) FROM queue").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM files WHERE synced_sha256 = sha256"
                            ).fetchone()[0] == tiny_set.count + 1
    finally:
        conn.close()
    assert not (tmp_path / "work" / "scale-first-scan").exists()
    touched = tiny_set.root / tiny_set.files[0][0]
    touched.write_bytes(touched.read_bytes())
    assert scale_index.cached_index(tiny_set, WATCH, cache) is None


def test_a_restart_over_the_synced_index_sends_nothing_to_a_fresh_server(
        tmp_path: Path, tiny_set: datagen.DataSet) -> None:
    """No cached index: the restart makes it with a first scan, then a real `agent --once`
    against a server that never saw the files hashes none and sends none (the server asks
    again only for contents it lost). The second restart takes the index from the cache."""
    cache = tmp_path / "data"
    runs = []
    for run in range(2):
        peer = PhotonicPeer(_folder(tmp_path / f"work{run}"))
        try:
            runs.append(scale.restart_over_index(peer, tiny_set.root, tiny_set.count,
                                                 cache_dir=cache))
        finally:
            peer.close()
    assert runs[0].index_s > 0 and runs[1].index_s == 0
    for figure in runs:
        values = scale.restart_values(figure)
        assert values["scale.restart.bytes"] == [0.0]
        assert values["scale.restart.files_sent"] == [0.0]
        assert values["scale.restart.s"][0] > 0 and values["scale.restart.rss_mb"][0] > 0


def test_a_tiny_manifest_check_times_send_and_have_answers(tmp_path: Path) -> None:
    """Over a small seeded catalog: 1,000 unknown contents are all answered SEND; 1,000
    contents the agent synced first (real objects it holds) offered at new paths are all
    answered HAVE."""
    peer = PhotonicPeer(_folder(tmp_path / "work"))
    try:
        figure = scale.manifest_check(peer, "bench-agent", 2000, 1, cache_dir=tmp_path / "data")
    finally:
        peer.close()
    assert figure.decisions == {"ACTION_SEND": 1000, "ACTION_HAVE": 1000}
    values = scale.manifest_values(figure)
    assert len(values["scale.manifest.new_ms"]) == len(values["scale.manifest.stored_ms"]) == 1
    assert json.dumps(values)


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path
