"""server.yaml `catalog.url`: where the catalog lives. Without it, <storage_path>/catalog.db
as before (the same file, so an existing installation opens unchanged); sqlite:/// names
another file; postgresql:// a database several servers share, where the job queue follows
unless jobs.queue_url says otherwise. A bad URL is a config error naming the file, the key
and what was expected."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from photonic.config import ServerConfig, load_server_config
from photonic.errors import ConfigError
from photonic.server.catalog import SqliteCatalog
from photonic.server.storage.catalogs import job_queue_url, open_catalog

SERVER = """\
server:
  storage_path: store
security:
  cert_path: certs/server.crt
  key_path: certs/server.key
  ca_path: certs/ca.crt
"""


def _load(tmp_path: Path, extra: str) -> ServerConfig:
    path = tmp_path / "server.yaml"
    path.write_text(textwrap.dedent(SERVER) + extra, encoding="utf-8")
    return load_server_config(path)


def test_without_catalog_url_the_catalog_is_catalog_db_in_the_storage(tmp_path: Path) -> None:
    config = _load(tmp_path, "")
    assert config.catalog.url == f"sqlite://{tmp_path / 'store' / 'catalog.db'}"
    assert config.catalog.sqlite_path == tmp_path / "store" / "catalog.db"
    catalog = open_catalog(config.catalog)
    try:
        assert isinstance(catalog, SqliteCatalog)
        assert (tmp_path / "store" / "catalog.db").is_file()
    finally:
        catalog.close()
    assert job_queue_url(config.catalog, config.jobs.queue_url) == ""


@pytest.mark.parametrize("url", ["sqlite:///var/lib/photonic/catalog.db",
                                 "postgresql://photonic@db.example:5432/photonic",
                                 "postgres://photonic@/photonic?host=/run/postgresql"])
def test_sqlite_and_postgresql_urls_are_taken_as_written(tmp_path: Path, url: str) -> None:
    assert _load(tmp_path, f"catalog:\n  url: '{url}'\n").catalog.url == url


def test_a_postgresql_catalog_takes_the_job_queue_unless_it_is_set(tmp_path: Path) -> None:
    url = "postgresql://photonic@db.example/photonic"
    config = _load(tmp_path, f"catalog:\n  url: '{url}'\n")
    assert job_queue_url(config.catalog, config.jobs.queue_url) == url
    other = "sqlite:///var/lib/photonic/jobs.db"
    config = _load(tmp_path, f"catalog:\n  url: '{url}'\njobs:\n  queue_url: '{other}'\n")
    assert job_queue_url(config.catalog, config.jobs.queue_url) == other


@pytest.mark.parametrize("url", ["mysql://db/photonic", "sqlite://relative/catalog.db",
                                 "postgresql://", "/var/lib/catalog.db", ""])
def test_a_bad_catalog_url_names_the_file_the_key_and_the_expectation(
        tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, f"catalog:\n  url: '{url}'\n")
    [problem] = caught.value.problems
    assert problem.file.endswith("server.yaml")
    assert problem.key == "catalog.url"
    assert "sqlite:///" in problem.expected and "postgresql://" in problem.expected


def test_an_unknown_catalog_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, "catalog:\n  uri: 'sqlite:///x.db'\n")
    assert [p.key for p in caught.value.problems] == ["catalog.uri"]


def test_a_postgresql_catalog_with_backup_nodes_is_refused_naming_both_keys(
        tmp_path: Path) -> None:
    """Replication reads the catalog's versions from this server's own catalog.db: with a
    PostgreSQL catalog it would find nothing to send, so the start is refused, saying why."""
    extra = ("catalog:\n  url: 'postgresql://photonic@db/photonic'\n"
             "storage:\n  backup_nodes: [{name: b1, endpoint: 'b1:50051'}]\n")
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, extra)
    [problem] = caught.value.problems
    assert problem.key == "catalog.url"
    assert "storage.backup_nodes" in problem.expected and "sqlite:///" in problem.expected
