"""Private by default, whatever the umask: after a real sync the agent's buffer folder and the
server's storage root are 0700, and the databases (with SQLite's -wal and -shm) and the status
file are 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemons import Daemon, make_agent, sha256_of, start_server
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import catalog_is_embedded, library_hashes


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common 022 umask, under which files are created world-readable unless chosen."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_buffer_store_databases_and_status_are_private_after_a_sync(
        tmp_path: Path, pki: TestPki, loose_umask: None, daemons: list[Daemon]) -> None:
    """A sync under umask 022 leaves: the buffer folder 0700; agent.db, status.json 0600; the
    storage root 0700; catalog.db (when the catalog is embedded) and its -wal and -shm and every
    other SQLite file of the server 0600 (read while the server runs).
    The library still shows the photo to the user running the server."""
    server = start_server(tmp_path / "server", pki)
    daemons.append(server.daemon)
    agent = make_agent(tmp_path / "agent", pki, "laptop", server)
    photo = make_jpeg(agent.watches["photos"] / "IMG_0001.jpg", seed=1)
    agent.once()

    assert _mode(agent.buffer) == 0o700
    for name in ("agent.db", "agent.db-wal", "agent.db-shm", "status.json"):
        if name == "agent.db" or (agent.buffer / name).exists():
            assert _mode(agent.buffer / name) == 0o600, name
    assert _mode(server.storage) == 0o700
    databases = {p.name for p in server.storage.glob("*.db*")}
    if catalog_is_embedded(server):
        assert {"catalog.db", "catalog.db-wal", "catalog.db-shm"} <= databases, databases
    for name in databases:  # the catalog's, and any other SQLite file the server keeps
        assert _mode(server.storage / name) == 0o600, name
    assert library_hashes(server, "laptop", "photos") == {"IMG_0001.jpg": sha256_of(photo)}
