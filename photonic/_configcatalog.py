"""server.yaml `catalog:`: where the catalog of photos, paths, versions and agents lives. The
embedded SQLite file beside the objects stays the default; `postgresql://...` puts it in a
database that several servers share (issue 20). photonic.config re-exports the dataclass; this
module only keeps config.py under its size."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from photonic import _configparse as cp
from photonic._configjobs import queue_backend

SQLITE_SCHEME = "sqlite:///"


@dataclass(frozen=True)
class CatalogConfig:
    """server.yaml `catalog:`."""

    url: str
    """`sqlite:///absolute/path/catalog.db` (default: <storage_path>/catalog.db) or
    `postgresql://user@host:port/database` (needs the `postgres` extra)."""

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`."""
        return catalog_backend(self.url)

    @property
    def sqlite_path(self) -> Path:
        """The catalog file of a sqlite:/// URL."""
        return Path("/" + self.url[len(SQLITE_SCHEME):].lstrip("/"))


def default_catalog_url(storage_path: Path) -> str:
    """Today's catalog: <storage_path>/catalog.db."""
    return f"{SQLITE_SCHEME}{(storage_path / 'catalog.db').as_posix().lstrip('/')}"


def catalog_backend(url: str) -> str:
    """`sqlite` or `postgresql` for a valid catalog.url, else ``. Unlike jobs.queue_url, an
    empty URL is no catalog: the default is filled in when the config is read."""
    return queue_backend(url) if url else ""


_CATALOG_URL = cp.text("a catalog URL: sqlite:///absolute/path/catalog.db or "
                       "postgresql://user@host:port/database",
                       lambda url: bool(catalog_backend(url)))


def read_catalog(catalog: cp.Section, storage_path: Path, *,
                 replicating: bool = False) -> CatalogConfig:
    """The `catalog:` section; a PostgreSQL catalog needs psycopg, said at start. replicating:
    storage.backup_nodes is set, whose replication queue reads the catalog's versions joined
    with its ledger in this server's own catalog.db, so it needs the embedded catalog."""
    config = CatalogConfig(catalog.get("url", _CATALOG_URL, default_catalog_url(storage_path)))
    if config.backend == "postgresql" and not importlib.util.find_spec("psycopg"):
        catalog.problems.add(catalog.key("url"), "psycopg installed for a postgresql:// "
                             "catalog (pip install 'photonic[postgres]')",
                             "psycopg is not installed")
    elif config.backend == "postgresql" and replicating:
        catalog.problems.add(catalog.key("url"), "the embedded catalog (sqlite:///...) while "
                             "storage.backup_nodes is set: replication to archive nodes does "
                             "not work from a PostgreSQL catalog yet",
                             "a postgresql:// URL")
    return config
