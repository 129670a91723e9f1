"""End-to-end: a synced photo rewritten in place by the real `cp -p` with the same size, mtime
and inode reaches the server as a new version, whether the agent is running (its watcher) or
stopped during the edit (the reconcile scan of its restart)."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    catalog_rows,
    make_agent,
    queued_count,
    sha256_of,
    wait_until,
)
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import library_sha, library_versions_at

pytestmark = pytest.mark.e2e

SHOOT = datetime(2024, 6, 1, 10, 0, 0)
NAME = "IMG_0001.jpg"
# The reconcile scan runs at start and then not again within a test: only the watcher can
# deliver an edit made while the daemon runs.
NO_RESCAN = {"agent": {"rescan_interval": "1h"}}


def _synced(agent: AgentHandle, server: ServerHandle, photo: Path) -> None:
    """Waits until the server's library holds photo as it is and the agent's queue is empty."""
    wanted = sha256_of(photo)
    wait_until(lambda: library_sha(server, agent.agent_id, "photos", photo.name) == wanted
               and queued_count(agent.buffer) == 0, 60, 0.2,
               f"{photo.name} at {wanted[:12]} in the library; agent log:\n"
               f"{agent.daemon.log()[-3000:]}")


def _cp_p_same_size_and_mtime(staging: Path, photo: Path) -> str:
    """Rewrites photo in place with the real `cp -p` from a same-size file with another capture
    time (what `exiftool -P` leaves), given photo's mtime first so cp -p carries it over. Returns
    the new content's sha256, after checking that size, mtime and inode are all unchanged."""
    other = make_jpeg(staging / photo.name, seed=1, capture_time=SHOOT + timedelta(minutes=7))
    before = photo.stat()
    assert other.stat().st_size == before.st_size and sha256_of(other) != sha256_of(photo)
    os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
    subprocess.run(["cp", "-p", str(other), str(photo)], check=True)
    after = photo.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino), "cp -p changed the signature"
    assert sha256_of(photo) == sha256_of(other)
    return sha256_of(photo)


def _assert_new_version(server: ServerHandle, old: str, new: str) -> None:
    """The head is the new content, the old one kept as name.v1.jpg, both in the catalog."""
    assert library_versions_at(server, "laptop", "photos", NAME) == {
        NAME: new, "IMG_0001.v1.jpg": old}
    rows = catalog_rows(server, "SELECT sha256 FROM versions ORDER BY version")
    assert [sha for (sha,) in rows] == [old, new]


def test_running_agent_sends_a_cp_p_rewrite_that_kept_size_and_mtime(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """A synced photo overwritten by `cp -p` while the agent runs (same size, mtime and inode,
    other bytes) is seen through the watcher and becomes the server's head, the old content
    kept as IMG_0001.v1.jpg."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server, extra=NO_RESCAN)
    photo = make_jpeg(agent.watches["photos"] / NAME, seed=1, capture_time=SHOOT)
    old = sha256_of(photo)
    daemons.append(agent.daemon)
    agent.start()
    _synced(agent, server, photo)

    new = _cp_p_same_size_and_mtime(tmp_path / "staging", photo)
    _synced(agent, server, photo)
    _assert_new_version(server, old, new)


def test_restarted_agent_sends_a_cp_p_rewrite_made_while_it_was_stopped(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """A synced photo overwritten by `cp -p` (same size, mtime and inode) while the agent is
    stopped is found by the reconcile scan when the agent starts again: no watcher event
    exists for it, and it still becomes the server's head with the old content kept."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server, extra=NO_RESCAN)
    photo = make_jpeg(agent.watches["photos"] / NAME, seed=1, capture_time=SHOOT)
    old = sha256_of(photo)
    daemons.append(agent.daemon)
    agent.start()
    _synced(agent, server, photo)
    assert agent.daemon.terminate() == 0

    new = _cp_p_same_size_and_mtime(tmp_path / "staging", photo)
    mark = len(agent.daemon.log())
    agent.start()
    _synced(agent, server, photo)
    _assert_new_version(server, old, new)
    assert "hashed=1" in agent.daemon.log()[mark:], "the restart's scan did not hash the edit"
