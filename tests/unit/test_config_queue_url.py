"""server.yaml `jobs.queue_url`: where the job queue lives (the embedded SQLite file by
default, another SQLite file, or a PostgreSQL database several servers share); a bad URL is
a config error naming the file, the key and what was expected."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from photonic.config import load_server_config
from photonic.errors import ConfigError
from photonic.server.jobs.backends import open_job_queue
from photonic.server.jobs.sqlite_queue import SqliteJobQueue

SERVER = """\
server:
  storage_path: store
security:
  cert_path: certs/server.crt
  key_path: certs/server.key
  ca_path: certs/ca.crt
"""


def _load(tmp_path: Path, jobs: str) -> str:
    path = tmp_path / "server.yaml"
    path.write_text(textwrap.dedent(SERVER) + jobs, encoding="utf-8")
    return load_server_config(path).jobs.queue_url


@pytest.mark.parametrize("url", ["sqlite:///var/lib/photonic/jobs.db",
                                 "postgresql://photonic@db.example:5432/photonic",
                                 "postgres://photonic@/photonic?host=/run/postgresql"])
def test_sqlite_and_postgresql_urls_are_taken_as_written(tmp_path: Path, url: str) -> None:
    assert _load(tmp_path, f"jobs:\n  queue_url: '{url}'\n") == url


def test_without_a_queue_url_the_queue_is_jobs_db_beside_the_catalog(tmp_path: Path) -> None:
    assert _load(tmp_path, "") == ""
    queue = open_job_queue("", tmp_path)
    try:
        assert isinstance(queue, SqliteJobQueue)
        assert (tmp_path / "jobs.db").is_file()
    finally:
        queue.close()


@pytest.mark.parametrize("url", ["mysql://db/photonic", "sqlite://relative/jobs.db",
                                 "postgresql://", "/var/lib/jobs.db"])
def test_a_bad_queue_url_names_the_file_the_key_and_the_expectation(
        tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, f"jobs:\n  queue_url: '{url}'\n")
    [problem] = caught.value.problems
    assert problem.file.endswith("server.yaml")
    assert problem.key == "jobs.queue_url"
    assert "sqlite:///" in problem.expected and "postgresql://" in problem.expected
    assert url in problem.got
