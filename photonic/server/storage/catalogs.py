"""The one place that picks the catalog's engine from catalog.url: the embedded SQLite file
(the default, <storage_path>/catalog.db) or PostgreSQL (several servers share it). psycopg is
imported only for a postgresql:// catalog: the embedded server does not need it."""

from __future__ import annotations

from pathlib import Path

from photonic._configcatalog import CatalogConfig
from photonic.errors import InvalidInput, NotFound
from photonic.server.catalog import Catalog, SqliteCatalog
from photonic.server.scrub_tables import ScrubTables


def open_catalog(config: CatalogConfig) -> Catalog:
    """The catalog config names; an unreachable PostgreSQL raises Transient naming its host
    (never the password)."""
    if config.backend == "postgresql":
        from photonic.server.storage.pg_catalog import PgCatalog
        return PgCatalog(config.url)
    return SqliteCatalog(config.sqlite_path)


def job_queue_url(catalog: CatalogConfig, queue_url: str) -> str:
    """Where the job queue goes: jobs.queue_url when set; else, with a PostgreSQL catalog, the
    same database (the queue's own tables); else the embedded jobs.db (empty)."""
    if queue_url or catalog.backend != "postgresql":
        return queue_url
    return catalog.url


def require_catalog(config: CatalogConfig) -> None:
    """For the offline tools (verify, scrub): an embedded catalog file that does not exist
    means the wrong server.yaml, said before an empty catalog is made there."""
    if config.backend == "sqlite" and not config.sqlite_path.exists():
        raise InvalidInput(f"no server catalog at {config.sqlite_path}: are server.storage_path "
                           "and catalog.url in this server.yaml the server's?")


def open_catalog_reader(config: CatalogConfig) -> Catalog:
    """The catalog for a tool that only reads while the server may run (`audit tail`): the
    embedded file read-only (it must exist: no catalog is made for a wrong server.yaml), or
    the PostgreSQL database."""
    if config.backend == "postgresql":
        return open_catalog(config)
    if not config.sqlite_path.exists():
        raise NotFound(f"{config.sqlite_path} does not exist: has the server run with this "
                       "storage_path?")
    return SqliteCatalog.read_only(config.sqlite_path)


def open_scrub_tables(storage_path: Path, config: CatalogConfig, catalog: Catalog
                      ) -> ScrubTables:
    """The scrub's progress, always in this server's own <storage_path>/catalog.db; its
    catalog reads from that file too, or from the PostgreSQL catalog when catalog.url is one
    (an embedded catalog.db beside a PostgreSQL catalog holds no photos)."""
    local = storage_path / "catalog.db"
    if config.backend != "postgresql":
        return ScrubTables(local)
    from photonic.server.storage.pg_catalog import PgCatalog
    assert isinstance(catalog, PgCatalog)
    return ScrubTables(local, catalog_reads=catalog)
