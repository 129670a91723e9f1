"""Promoting an archive node to a primary (`photonic server promote`), against real daemons
over real mutual TLS: a primary with an agent replicates to an archive; both servers stop;
the archive is promoted and started as a primary. Its library tree and catalog are the old
primary's (same bytes, paths and version chains), the agent syncs to it sending only what is
new, a second promote changes nothing, and a promote SIGKILLed after its commit is finished
by running it again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from photonic.server.faults import POINT_ENV
from tests.support.archive import (
    PRIMARY_ID,
    archive_library,
    start_archive,
    start_primary,
    start_promoted,
    unconfirmed_versions,
)
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    free_port,
    make_agent,
    run_cli,
    sqlite_rows,
    tree_hashes,
    wait_until,
    web_get,
    web_token,
    write_agent_config,
)
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki

pytestmark = [pytest.mark.e2e, pytest.mark.local_objects(
    "promote turns an archive node's local store and embedded catalog into a primary")]


def _token(server: ServerHandle) -> str:
    return web_token(server)


def _library_view(server: ServerHandle, token: str, folder: str = "") -> dict[str, Any]:
    """Every level of GET /api/v1/library from folder down: {folder: [(name, library_path,
    sha256, size, [(version sha256, size, current)])]} (photo details give the versions)."""
    level = web_get(server, f"/api/v1/library?folder={folder}", token)
    view: dict[str, Any] = {folder: [
        (p["name"], p["library_path"], p["sha256"], p["size"],
         [(v["sha256"], v["size"], v["current"])
          for v in web_get(server, f"/api/v1/photos/{p['id']}", token)["versions"]])
        for p in level["photos"]]}
    for name in level["folders"]:
        view.update(_library_view(server, token, f"{folder}/{name}".lstrip("/")))
    return view


def _photos(folder: Path, seeds: range) -> None:
    for seed in seeds:
        sub = folder / ("2024/june" if seed % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        make_jpeg(sub / f"img_{seed:03d}.jpg", seed=seed)


def _replicated(primary: ServerHandle, archive: ServerHandle) -> bool:
    return (unconfirmed_versions(primary) == 0
            and tree_hashes(archive_library(archive) / "laptop")
            == tree_hashes(primary.storage / "library" / "laptop"))


def _catalog(server: ServerHandle) -> list[tuple[Any, ...]]:
    return sqlite_rows(
        server.storage / "catalog.db",
        "SELECT l.agent_id, l.watch_name, l.rel_path, l.folder, l.head_version, v.version, "
        "v.sha256, v.library_path FROM locations l JOIN versions v ON v.location_id = l.id "
        "ORDER BY l.agent_id, l.watch_name, l.rel_path, v.version")


@pytest.fixture
def replicated(tmp_path: Path, pki: TestPki, daemons: list[Daemon]
               ) -> Iterator[tuple[ServerHandle, ServerHandle, AgentHandle]]:
    """Both servers stopped after six photos and a second version of one reached the
    archive."""
    archive = start_archive(tmp_path / "archive", pki)
    daemons.append(archive.daemon)
    primary = start_primary(tmp_path / "primary", pki, archive.endpoint)
    daemons.append(primary.daemon)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", primary)
    photos = agent.watches["photos"]
    _photos(photos, range(6))
    agent.once()
    (photos / "img_000.jpg").write_bytes((photos / "img_002.jpg").read_bytes()[:-2] + b"\xff\xd9")
    agent.once()
    wait_until(lambda: _replicated(primary, archive), 90, message="replication")
    yield primary, archive, agent


def _promote(archive: ServerHandle, *extra: str) -> Any:
    return run_cli("server", "promote", "--config", str(archive.config_path),
                   "--from-primary", PRIMARY_ID, *extra)


def test_a_promoted_archive_serves_the_primarys_library_and_its_agents(
        replicated: tuple[ServerHandle, ServerHandle, AgentHandle], daemons: list[Daemon]
        ) -> None:
    """The promoted archive holds library/laptop/photos/... byte-identical to the primary's,
    lists the same paths and version chains over the API, takes the agent's next photo
    (sending only its bytes), and a second promote is a no-op. While it runs, promote is
    refused; --dry-run only prints."""
    primary, archive, agent = replicated
    primary_tree = tree_hashes(primary.storage / "library")
    token = _token(primary)
    primary_view = _library_view(primary, token)
    primary_catalog = _catalog(primary)
    running = _promote(archive)
    assert running.returncode == 1 and "stop this server first" in running.stderr, running
    primary.daemon.terminate()
    archive.daemon.terminate()

    dry = _promote(archive, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "laptop: 6 paths, 7 versions" in dry.stdout and "nothing changed" in dry.stdout
    assert (archive_library(archive) / "laptop").is_dir()
    done = _promote(archive)
    assert done.returncode == 0, done.stderr
    assert "server.role: primary" in done.stdout and "server_endpoints" in done.stdout
    assert tree_hashes(archive.storage / "library") == primary_tree  # (a)
    assert not archive_library(archive).exists()
    assert _catalog(archive) == primary_catalog

    again = _promote(archive)  # (d)
    assert again.returncode == 0 and "nothing to promote" in again.stdout, again
    assert tree_hashes(archive.storage / "library") == primary_tree
    assert _catalog(archive) == primary_catalog

    promoted = start_promoted(archive, free_port())
    daemons.append(promoted.daemon)
    assert _library_view(promoted, _token(promoted)) == primary_view  # (b)

    write_agent_config(agent.root, promoted.pki, "laptop", [promoted.endpoint],
                       agent.watches.items())  # (c)
    new = agent.watches["photos"] / "img_new.jpg"
    make_jpeg(new, seed=99)
    summary = agent.once()
    assert summary["files_uploaded"] == 1, summary
    assert summary["raw_bytes_sent"] == new.stat().st_size, summary
    library = tree_hashes(archive.storage / "library" / "laptop" / "photos")
    assert library["img_new.jpg"] == tree_hashes(agent.watches["photos"])["img_new.jpg"]
    assert len(library) == 8  # six photos, the older version, the new photo


@pytest.mark.parametrize("point", ["promote_after_commit", "promote_after_rename"])
def test_a_promote_killed_midway_is_finished_by_running_it_again(
        replicated: tuple[ServerHandle, ServerHandle, AgentHandle],
        monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    """SIGKILL after the catalog commit (before any rename) or after the rename (before it is
    struck off): the re-run ends in the same state as an uninterrupted promote."""
    primary, archive, _agent = replicated
    primary.daemon.terminate()
    archive.daemon.terminate()
    monkeypatch.setenv(POINT_ENV, point)
    killed = _promote(archive)
    assert killed.returncode == -9, (killed.returncode, killed.stdout, killed.stderr)
    pending = sqlite_rows(archive.storage / "catalog.db",
                          "SELECT source, target FROM promotion_renames")
    assert pending == [(f"library/{PRIMARY_ID}/laptop", "library/laptop")]
    monkeypatch.delenv(POINT_ENV)
    rerun = _promote(archive)
    assert rerun.returncode == 0, rerun.stderr
    assert "finished an interrupted promotion" in rerun.stdout, rerun.stdout
    assert tree_hashes(archive.storage / "library") == tree_hashes(primary.storage / "library")
    assert not archive_library(archive).exists()
    assert _catalog(archive) == _catalog(primary)
    assert sqlite_rows(archive.storage / "catalog.db",
                       "SELECT COUNT(*) FROM promotion_renames") == [(0,)]
    assert sqlite_rows(archive.storage / "catalog.db",
                       "SELECT agent_id, photos FROM agent_totals") == [("laptop", 6)]
