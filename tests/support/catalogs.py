"""The catalog under test on either engine: `catalogs` is parametrised over the embedded
SQLite file and PostgreSQL (a fresh database of the session's throwaway cluster per place),
so one test states one contract for both. A place is a catalog's home: opening it again is a
server restart. table_rows reads a table itself, for tests that compare raw rows."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from photonic._configcatalog import CatalogConfig, default_catalog_url
from photonic.server.catalog import Catalog, SqliteCatalog
from photonic.server.storage.catalogs import open_catalog
from tests.support.postgres import TEMPLATE, PgCluster

CATALOG_BACKENDS = ("sqlite", "postgresql")
_numbers = itertools.count(1)


class Catalogs:
    """Makes catalog URLs (fresh places) and opens them; closes and retires all at the end."""

    def __init__(self, backend: str, cluster: PgCluster | None) -> None:
        self.backend = backend
        self._cluster = cluster
        self._opened: list[Catalog] = []
        self._databases: list[str] = []

    def url(self, root: Path) -> str:
        """A fresh, empty catalog's URL: root/catalog.db, or a new PostgreSQL database."""
        if self._cluster is None:
            return default_catalog_url(root)
        name = f"catalog_{os.getpid()}_{next(_numbers)}"
        self._cluster.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        self._databases.append(name)
        return self._cluster.url(name)

    def open(self, url: str) -> Catalog:
        self._opened.append(open_catalog(CatalogConfig(url)))
        return self._opened[-1]

    def new(self, root: Path) -> Catalog:
        return self.open(self.url(root))

    def close(self) -> None:
        for catalog in self._opened:
            catalog.close()
        if self._cluster is not None:
            for name in self._databases:
                self._cluster.retire(name)


@pytest.fixture(params=CATALOG_BACKENDS)
def catalogs(request: pytest.FixtureRequest) -> Iterator[Catalogs]:
    cluster = request.getfixturevalue("pg_cluster") if request.param == "postgresql" else None
    made = Catalogs(request.param, cluster)
    yield made
    made.close()


def table_rows(catalog: Catalog, query: str) -> list[tuple[Any, ...]]:
    """Rows of a query without parameters, read from the catalog's own tables."""
    if isinstance(catalog, SqliteCatalog):
        return [tuple(r) for r in catalog._conn.execute(query)]
    from photonic.server.storage.pg_catalog import PgCatalog
    assert isinstance(catalog, PgCatalog)
    return [tuple(r) for r in catalog._db.all(query)]
