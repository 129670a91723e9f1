"""The server's catalog on PostgreSQL (catalog.url: postgresql://, issue 20), with real
daemons over real mutual TLS and a real throwaway PostgreSQL 15: a first sync of several
photos lands byte for byte, a second run is answered HAVE, a new version of a path is kept as
a version, a lost-index change is a conflict, the web API lists the library, and a restarted
server finds everything where it was. The catalog rows are in PostgreSQL, not in a local
catalog.db, and the job queue went to the same database (jobs.queue_url left empty)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from photonic.server.pg_db import connect
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    free_port,
    make_agent,
    run_cli,
    sha256_of,
    sqlite_rows,
    start_server,
    tree_hashes,
    wait_until,
    web_get,
    web_token,
    write_server_config,
)
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import bucket_of, library_hashes, library_versions_at

pytestmark = pytest.mark.e2e

SHOOT = datetime(2024, 6, 1, 10, 0, 0)


@pytest.fixture
def pg_server(tmp_path: Path, pki: TestPki, pg_url: str,
              daemons: list[Daemon]) -> ServerHandle:
    """A server whose catalog.url is the test's fresh PostgreSQL database."""
    http_port = free_port()
    handle = start_server(tmp_path / "server", pki, extra={
        "server": {"web_ui_port": http_port}, "catalog": {"url": pg_url}})
    handle.http_port = http_port
    daemons.append(handle.daemon)
    return handle


def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    with connect(url) as conn:
        return list(conn.execute(query).fetchall())


def _remote(agent: AgentHandle) -> dict[str, object]:
    status: dict[str, object] = json.loads(run_cli(
        "status", "--config", str(agent.config_path), "--json", "--remote",
        check=True).stdout)["remote"]
    return status


def test_sync_versions_conflicts_listing_and_restart_on_a_postgresql_catalog(
        tmp_path: Path, pki: TestPki, pg_server: ServerHandle, pg_url: str) -> None:
    server = pg_server
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    photos = agent.watches["photos"]
    for i in range(4):
        make_jpeg(photos / "2024" / f"IMG_{i}.jpg", seed=900 + i, capture_time=SHOOT)
    make_jpeg(photos / "top.jpg", seed=950)

    first = agent.once()
    assert first["files_uploaded"] == 5, first
    assert library_hashes(server, "laptop", "photos") == tree_hashes(photos)
    assert _rows(pg_url, "SELECT COUNT(*) FROM locations") == [(5,)]
    assert _rows(pg_url, "SELECT photos FROM agent_totals WHERE agent_id = 'laptop'") == [(5,)]
    # With local objects a local catalog.db remains (the scrub's progress and the
    # replication ledger stay local), but no photo is recorded there.
    if bucket_of(server) is None:
        assert sqlite_rows(server.storage / "catalog.db",
                           "SELECT COUNT(*) FROM photos") == [(0,)]
    assert _rows(pg_url, "SELECT COUNT(*) FROM jobs") == [(0,)]  # the queue's own tables

    # The same photos again, from a second agent: every one answered HAVE, no bytes sent.
    desktop = make_agent(tmp_path / "desktop", pki, "desktop", server)
    shutil.copytree(photos, desktop.watches["photos"], dirs_exist_ok=True)
    again = desktop.once()
    assert (again["files_deduplicated"], again["files_uploaded"]) == (5, 0), again
    assert again["bytes_sent"] == 0, again

    # An edit based on the head: a new version, the old kept as name.v1.
    edited = photos / "2024" / "IMG_1.jpg"
    old = sha256_of(edited)
    make_jpeg(edited, seed=999, capture_time=SHOOT)
    assert agent.once()["files_uploaded"] == 1
    assert library_versions_at(server, "laptop", "photos", "2024/IMG_1.jpg") == {
        "IMG_1.jpg": sha256_of(edited), "IMG_1.v1.jpg": old}

    # A change not based on the head (the agent lost its index), under manual: parked.
    shutil.rmtree(agent.buffer)
    head = sha256_of(photos / "top.jpg")
    make_jpeg(photos / "top.jpg", seed=951)
    manual = make_agent(tmp_path / "laptop", pki, "laptop", server,
                        extra={"sync": {"conflict_resolution": "manual"}})
    assert manual.once()["conflicts"] == 1
    conflicts = _remote(manual)["open_conflicts"]
    assert isinstance(conflicts, list)
    assert [(c["relative_path"], c["server_sha256"]) for c in conflicts] == [("top.jpg", head)]
    assert library_versions_at(server, "laptop", "photos", "top.jpg") == {"top.jpg": head}

    # The web API lists the library from the PostgreSQL catalog.
    token = web_token(server)
    top = web_get(server, "/api/v1/library?folder=laptop/photos", token)
    assert top["folders"] == ["2024"]
    assert [p["name"] for p in top["photos"]] == ["top.jpg"]
    inner = web_get(server, "/api/v1/library?folder=laptop/photos/2024", token)
    assert sorted(p["name"] for p in inner["photos"]) == [f"IMG_{i}.jpg" for i in range(4)]

    # A restart finds everything: the next run sends nothing, the conflict is still open.
    server.daemon.terminate(20)
    server.start()
    rerun = desktop.once()
    assert rerun["files_uploaded"] == 0 and rerun["bytes_sent"] == 0, rerun
    assert len(_remote(manual)["open_conflicts"]) == 1  # type: ignore[arg-type]
    assert web_get(server, "/api/v1/library?folder=laptop/photos", token)["folders"] == ["2024"]


def test_a_server_whose_postgresql_is_unreachable_fails_naming_the_host(
        tmp_path: Path, pki: TestPki) -> None:
    """The start fails at once with a message naming the host, never the password."""
    url = "postgresql://photonic:s3cret-pass@127.0.0.1:1/photonic"
    with pytest.raises(AssertionError) as caught:
        start_server(tmp_path / "server", pki, extra={"catalog": {"url": url}})
    log = (tmp_path / "server" / "server.log").read_text()
    assert "127.0.0.1" in log and "unreachable" in log, log[-2000:]
    assert "s3cret-pass" not in log
    assert "Traceback" not in log, log[-3000:]
    assert "exited" in str(caught.value)


def test_promote_refuses_a_postgresql_catalog(tmp_path: Path, pki: TestPki) -> None:
    """`photonic server promote` works on an archive node's embedded catalog only: with
    catalog.url postgresql:// it changes nothing and says why, without a traceback."""
    path, _port = write_server_config(tmp_path / "server", pki, extra={
        "catalog": {"url": "postgresql://photonic:s3cret@127.0.0.1:1/photonic"},
        "storage": {"objects": "local"}})  # promote refuses s3:// objects first (their test)
    done = run_cli("server", "promote", "--config", str(path), "--from-primary", "primary")
    assert done.returncode != 0
    assert "embedded catalog" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "s3cret" not in done.stderr + done.stdout


def test_a_database_that_goes_away_is_told_to_agents_without_its_address(
        tmp_path: Path, pki: TestPki, pg_server: ServerHandle, pg_url: str,
        daemons: list[Daemon]) -> None:
    """The catalog's database refuses the server's connections while it runs: the agent's
    sync is refused as retryable with plain text and a correlation id (never the database's
    socket folder, port or URL); the server's log has the whole message under that id; once
    the database is back, the running agent's photo arrives without any restart."""
    server = pg_server
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    photos = agent.watches["photos"]
    make_jpeg(photos / "IMG_1.jpg", seed=1201, capture_time=SHOOT)
    database = pg_url.split("?", 1)[0].rsplit("/", 1)[1]
    socket_dir = pg_url.split("host=", 1)[1].split("&", 1)[0]
    _admin(pg_url, f"ALTER DATABASE {database} ALLOW_CONNECTIONS false",
           "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
           f"WHERE datname = '{database}' AND pid <> pg_backend_pid()")
    try:
        mark = len(server.daemon.log())
        daemons.append(agent.start().daemon)
        agent.daemon.wait_for_log("the server's database is unreachable now", timeout_s=60)
        told = agent.daemon.log()
        assert socket_dir not in told and "postgresql://" not in told, told[-3000:]
        assert str(server.storage) not in told and "Traceback" not in told, told[-3000:]
        correlation = told.split("correlation id ", 1)[1][:16]
        logged = server.daemon.log()[mark:]
        assert f"correlation_id={correlation}" in logged, logged[-3000:]
        assert socket_dir in logged, logged[-3000:]
    finally:
        _admin(pg_url, f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
    wait_until(lambda: library_hashes(server, "laptop", "photos") == tree_hashes(photos),
               timeout_s=90)


def _admin(url: str, *statements: str) -> None:
    """Statements run from the cluster's maintenance database (a database refusing
    connections cannot be altered from inside)."""
    with connect(url.replace(url.split("?", 1)[0].rsplit("/", 1)[1] + "?", "postgres?", 1)) \
            as conn:
        for statement in statements:
            conn.execute(statement.encode())
