"""A server catalog of millions of synthetic photos for the manifest figure: seeded once
through the server's own migrations, cached under bench/.data, copied into each run's storage.

Seeding 10,000,000 rows takes minutes, so the cached catalog.db is keyed by (photos, the
server catalog's schema version, SEED_VERSION): a new migration or a change to the seeding
below makes it again. Rows are first appended to a staging table, then inserted into `photos`
in SHA-256 order, so every B-tree (the table and its sha256 index) is built by appending; in
hash order a random insert would miss the page cache once the index outgrows it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from bench.scale_index import migration_version

log = logging.getLogger("bench.scale")

SEED_VERSION = 2
"""Bump when the seeded rows change: every cached catalog is then seeded again."""
SERVER_MIGRATIONS = "photonic.server.migrations"
_DB_NAME = "catalog.db"
_META_NAME = "catalog.json"
_STAGE_BATCH = 50_000
_PROGRESS_EVERY_ROWS = 1_000_000
_PROGRESS_EVERY_S = 15.0


def synthetic_hash(index: int) -> str:
    """The catalog's fake photo number `index`: a well-formed, deterministic SHA-256."""
    return hashlib.sha256(f"photonic-bench-catalog-{index}".encode()).hexdigest()


def catalog_key(photos: int) -> str:
    """What a cached catalog was made from; any change makes a new one."""
    text = json.dumps([SEED_VERSION, photos, migration_version(SERVER_MIGRATIONS)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_catalog(photos: int, cache_dir: Path) -> Path:
    """The cached catalog of `photos` synthetic photos, seeded first if missing or stale."""
    folder = cache_dir / f"catalog-{photos}"
    key = catalog_key(photos)
    try:
        if json.loads((folder / _META_NAME).read_text()).get("key") == key:
            return folder / _DB_NAME
    except (OSError, ValueError):
        pass
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    log.info("seeding a catalog of %s synthetic photos (cached in %s)", f"{photos:,}", folder)
    seed_catalog(folder / _DB_NAME, photos)
    log.info("catalog of %s photos seeded in %.0f s", f"{photos:,}", time.perf_counter() - started)
    # The metadata goes last: a catalog interrupted half-way has none and is seeded again.
    (folder / _META_NAME).write_text(json.dumps({"key": key, "photos": photos}))
    return folder / _DB_NAME


def seed_catalog(path: Path, photos: int) -> None:
    """Makes a catalog at path (the server's migrations, by opening SqliteCatalog) holding
    `photos` synthetic photos, checkpointed into the one file so it can be copied as is."""
    from photonic.server.catalog import SqliteCatalog

    SqliteCatalog(path).close()
    stage = path.with_name(path.name + ".stage")
    stage.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # A file being seeded is worth nothing until done: no journal, no fsync.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")  # 256 MiB
        conn.execute("PRAGMA threads = 2")  # the sorter's helpers
        conn.execute("ATTACH DATABASE ? AS stage", (str(stage),))
        conn.execute("PRAGMA stage.journal_mode = OFF")
        conn.execute("CREATE TABLE stage.seed (sha256 TEXT, size INTEGER)")
        _stage_rows(conn, photos)
        _insert_sorted(conn, photos)
        conn.execute("DETACH DATABASE stage")
        conn.execute("PRAGMA journal_mode = WAL")  # what the server opens it in anyway
    finally:
        conn.close()
        stage.unlink(missing_ok=True)


def _stage_rows(conn: sqlite3.Connection, photos: int) -> None:
    started = time.perf_counter()
    conn.execute("BEGIN")
    for start in range(0, photos, _STAGE_BATCH):
        conn.executemany("INSERT INTO stage.seed VALUES (?, ?)",
                         _rows(start, min(photos, start + _STAGE_BATCH)))
        done = min(photos, start + _STAGE_BATCH)
        if done % _PROGRESS_EVERY_ROWS < _STAGE_BATCH or done == photos:
            log.info("catalog seeding: %s of %s rows hashed after %.0f s", f"{done:,}",
                     f"{photos:,}", time.perf_counter() - started)
    conn.execute("COMMIT")


def _rows(start: int, stop: int) -> Iterator[tuple[str, int]]:
    for index in range(start, stop):
        sha = synthetic_hash(index)
        yield sha, 4_000_000 + int(sha[:8], 16) % 4_000_000


def _insert_sorted(conn: sqlite3.Connection, photos: int) -> None:
    """One INSERT ... SELECT ... ORDER BY (SQLite's external sort), logging while it runs."""
    started = time.perf_counter()
    last = started

    def progress() -> int:
        nonlocal last
        now = time.perf_counter()
        if now - last >= _PROGRESS_EVERY_S:
            last = now
            log.info("catalog seeding: sorting and inserting %s rows, %.0f s so far",
                     f"{photos:,}", now - started)
        return 0  # go on

    conn.set_progress_handler(progress, 1_000_000)
    try:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO photos (sha256, size, stored_ms) "
                     "SELECT sha256, size, ? FROM stage.seed ORDER BY sha256",
                     (int(time.time() * 1000),))
        conn.execute("COMMIT")
    finally:
        conn.set_progress_handler(None, 0)


def install_catalog(cached: Path, storage_path: Path) -> Path:
    """Copies the cached catalog into a server's (not yet started) storage folder.

    Its scrub is recorded as having just finished a pass: a fresh catalog makes the server
    start one at once, and over millions of rows whose objects this synthetic catalog never
    had it would quarantine them one by one while the manifests are timed. A real server
    over such a library is between passes nearly all the time."""
    storage_path.mkdir(parents=True, exist_ok=True)
    target = storage_path / _DB_NAME
    shutil.copyfile(cached, target)
    target.chmod(0o600)
    now_ms = int(time.time() * 1000)
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.execute("UPDATE scrub_progress SET pass_started_ms = ?, in_pass = 0, "
                     "last_completed_ms = ? WHERE id = 1", (now_ms, now_ms))
    finally:
        conn.close()
    return target
