"""A PostgreSQL catalog of millions of synthetic photos for the scale-out manifest figure:
seeded once through photonic's own PostgreSQL migrations and cached under bench/.data as a
stopped cluster's data folder, copied into each run and started there.

The rows are those of the SQLite catalog (bench/scale_catalog.py: the same synthetic hashes
and sizes), so both catalogs answer the same manifests. They go in by COPY into an unlogged
staging table, then into `photos` by one INSERT ... SELECT ... ORDER BY sha256, so every
B-tree (the primary key, seq's and the capture-time index) is built by appending, as the
SQLite seeding does; then VACUUM (FREEZE, ANALYZE), so a run starts with the visibility map
set and the planner's statistics made, as a long-lived catalog has them. The cluster runs with
fsync off while seeding (a half-made cache is worth nothing: its metadata is written last) and
is stopped cleanly, so the copy starts with PostgreSQL's defaults, fsync on.

Size: ~330 bytes a photo on disk (table and three indexes), ~3.3 GB for 10,000,000."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.scale_catalog import synthetic_hash
from bench.scale_index import migration_version
from bench.scaleout_services import PgService

log = logging.getLogger("bench.scaleout")

SEED_VERSION = 1
"""Bump when the seeded rows change: every cached PostgreSQL catalog is then seeded again."""
PG_MIGRATIONS = "photonic.server.storage.pg_catalog_migrations"
DATABASE = "catalog"
_META_NAME = "catalog.json"
_SEED_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off",
                  "maintenance_work_mem=512MB", "work_mem=256MB",
                  "checkpoint_timeout=30min")
COPY_BATCH = 100_000


def pg_catalog_key(photos: int, pg_major: str) -> str:
    """What a cached catalog was made from (the rows, the schema, the PostgreSQL major version
    whose data folder it is); any change makes a new one."""
    text = json.dumps([SEED_VERSION, photos, migration_version(PG_MIGRATIONS), pg_major])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_folder(cache_dir: Path, photos: int) -> Path:
    return cache_dir / f"pg-catalog-{photos}"


@dataclass(frozen=True)
class CopyBatch:
    """Rows [start, stop) of the seeding, sent as one COPY buffer."""

    start: int
    stop: int


def seeding_plan(photos: int, batch: int = COPY_BATCH) -> list[CopyBatch]:
    """The COPY buffers that together hold rows 0..photos-1 once each, in order."""
    if photos < 0 or batch < 1:
        raise ValueError("photos >= 0 and batch >= 1")
    return [CopyBatch(start, min(photos, start + batch)) for start in range(0, photos, batch)]


def photo_size(sha256: str) -> int:
    """The synthetic photo's size: 4-8 MB, from its hash, as bench/scale_catalog.py gives it."""
    return 4_000_000 + int(sha256[:8], 16) % 4_000_000


def copy_text(batch: CopyBatch) -> bytes:
    """The staging table's COPY text for one batch: `sha256<TAB>size` lines."""
    return "".join(_lines(batch)).encode()


def _lines(batch: CopyBatch) -> Iterator[str]:
    for index in range(batch.start, batch.stop):
        sha = synthetic_hash(index)
        yield f"{sha}\t{photo_size(sha)}\n"


def pg_major(service_bin: Path) -> str:
    """`15` for /usr/lib/postgresql/15/bin: the data folder's format follows it."""
    return service_bin.parent.name


def ensure_pg_catalog(photos: int, cache_dir: Path, work_dir: Path) -> Path:
    """The cached data folder of a stopped cluster whose database `catalog` holds `photos`
    synthetic photos; seeded first (in work_dir, then moved into the cache) when missing."""
    from tests.support.postgres import pg_bin_dir

    bin_dir = pg_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("no initdb/pg_ctl: install Debian's postgresql package")
    folder = cache_folder(cache_dir, photos)
    key = pg_catalog_key(photos, pg_major(bin_dir))
    try:
        if json.loads((folder / _META_NAME).read_text()).get("key") == key:
            return folder / "data"
    except (OSError, ValueError):
        pass
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    log.info("seeding a PostgreSQL catalog of %s synthetic photos (cached in %s)",
             f"{photos:,}", folder)
    root = work_dir / "pg-seed"
    shutil.rmtree(root, ignore_errors=True)
    service = PgService.fresh(root)
    try:
        service.cluster.stop()
        service.cluster.start(*_SEED_SETTINGS)
        service.cluster.execute(f"CREATE DATABASE {DATABASE}")
        seed(service.cluster.url(DATABASE), photos)
        # Once more with a small WAL: the checkpoints drop the seeding's WAL segments (at
        # 10,000,000 photos over a GB), which every run would copy otherwise.
        service.cluster.stop()
        service.cluster.start("max_wal_size=32MB", "min_wal_size=32MB")
        for _ in range(2):
            service.cluster.execute("SELECT pg_switch_wal()")
            service.cluster.execute("CHECKPOINT")
    finally:
        service.close()
    folder.mkdir(parents=True)
    shutil.move(root / "data", folder / "data")
    shutil.rmtree(root, ignore_errors=True)
    log.info("PostgreSQL catalog of %s photos seeded in %.0f s", f"{photos:,}",
             time.perf_counter() - started)
    # The metadata goes last: a catalog interrupted half-way has none and is seeded again.
    (folder / _META_NAME).write_text(json.dumps({"key": key, "photos": photos}))
    return folder / "data"


def seed(url: str, photos: int) -> None:
    """photonic's migrations (by opening PgCatalog), then the rows, sorted, then VACUUM."""
    import psycopg

    from photonic.server.storage.pg_catalog import PgCatalog

    PgCatalog(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE UNLOGGED TABLE seed (sha256 TEXT COLLATE \"C\", size BIGINT)")
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY seed (sha256, size) FROM STDIN") as copy:
            for batch in seeding_plan(photos):
                copy.write(copy_text(batch))
                if batch.stop % 1_000_000 < COPY_BATCH or batch.stop == photos:
                    log.info("PostgreSQL catalog seeding: %s of %s rows copied after %.0f s",
                             f"{batch.stop:,}", f"{photos:,}", time.perf_counter() - started)
        conn.execute("INSERT INTO photos (sha256, size, stored_ms) "
                     "SELECT sha256, size, %s FROM seed ORDER BY sha256",
                     (int(time.time() * 1000),))
        log.info("PostgreSQL catalog seeding: rows inserted in order after %.0f s",
                 time.perf_counter() - started)
        conn.execute("DROP TABLE seed")
        conn.execute("VACUUM (FREEZE, ANALYZE)")
        conn.execute("CHECKPOINT")


def install_pg_catalog(data: Path, root: Path) -> tuple[PgService, str]:
    """The cached cluster copied into root and started: the service and the catalog's URL."""
    service = PgService.from_data(data, root)
    return service, service.cluster.url(DATABASE)
