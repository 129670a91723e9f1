"""An agent that lists several servers in server_endpoints moves to the next one when the
server it syncs with dies (SIGKILL mid-upload): its durable queue is drained there, every photo
arrives once and intact, and an agent started while the first server is down never waits on
it. Both servers have their own store here; scale-out shares one catalog and bucket between
them, so that the second already holds what the first committed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemons import (
    Daemon,
    ServerHandle,
    make_agent,
    queued_count,
    sha256_of,
    start_server,
    tree_hashes,
    wait_until,
)
from tests.support.photos import make_jpeg, make_raw_like
from tests.support.pki import TestPki
from tests.support.stored import library_hashes, received_bytes

pytestmark = pytest.mark.e2e

MB = 1_000_000


def _servers(tmp_path: Path, pki: TestPki, daemons: list[Daemon]) -> list[ServerHandle]:
    servers = [start_server(tmp_path / name, pki) for name in ("a", "b")]
    daemons.extend(s.daemon for s in servers)
    return servers


def test_the_agent_moves_to_the_next_endpoint_when_its_server_dies_mid_upload(
        tmp_path: Path, pki: TestPki, daemons: list[Daemon]) -> None:
    """A is first in the list and takes the small photos; it is SIGKILLed while the large
    RAW streams in (bandwidth-limited so the kill lands mid-file). The agent connects to B,
    which takes the RAW whole: what A acknowledged (durable in its store) and what B holds
    are the folder byte for byte, each file once, and the agent's queue is empty."""
    a, b = _servers(tmp_path, pki, daemons)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", [a.endpoint, b.endpoint],
                       extra={"network": {"max_bandwidth": "4MB/s", "chunk_size": "256KiB"}})
    photos = agent.watches["photos"]
    for i in range(4):
        make_jpeg(photos / "day" / f"IMG_{i:04d}.jpg", seed=700 + i)
    big = make_raw_like(photos / "day" / "DSC_0700.NEF", seed=770, size_bytes=24 * MB)
    sha = sha256_of(big)
    daemons.append(agent.daemon)
    agent.start()
    wait_until(lambda: received_bytes(a, sha) > 2 * MB, 60, 0.02,
               f"a partial upload on A; agent log:\n{agent.daemon.log()[-2000:]}")
    a.daemon.kill()

    def arrived() -> dict[str, str]:  # relative path -> hash, over both libraries
        held = [library_hashes(s, "laptop", "photos") for s in (a, b)]
        return {k: v for tree in held for k, v in tree.items()}

    wait_until(lambda: arrived() == tree_hashes(photos), 120, 0.25,
               f"A and B to hold the whole folder; agent log:\n{agent.daemon.log()[-3000:]}")
    wait_until(lambda: queued_count(agent.buffer) == 0, 30, 0.25, "the agent's queue to drain")
    on_a = library_hashes(a, "laptop", "photos")
    on_b = library_hashes(b, "laptop", "photos")
    assert not on_a.keys() & on_b.keys(), "a photo A acknowledged was sent again"
    assert "day/DSC_0700.NEF" in on_b, (on_a, on_b)
    assert f"endpoint={b.endpoint}" in agent.daemon.log()
    wait_until(lambda: agent.status()["state"] == "monitoring", 30, 0.25, "MONITORING on B")


def test_an_agent_started_while_its_first_server_is_down_syncs_to_the_next(
        tmp_path: Path, pki: TestPki, daemons: list[Daemon]) -> None:
    """`agent --once` with A stopped: A is tried, found unreachable, and B takes the photos;
    the summary counts them uploaded and nothing is left queued."""
    a, b = _servers(tmp_path, pki, daemons)
    a.daemon.terminate()
    agent = make_agent(tmp_path / "laptop", pki, "laptop", [a.endpoint, b.endpoint])
    for i in range(3):
        make_jpeg(agent.watches["photos"] / f"IMG_{i:04d}.jpg", seed=800 + i)
    summary = agent.once()
    assert summary["files_uploaded"] == 3, summary
    assert library_hashes(b, "laptop", "photos") == tree_hashes(agent.watches["photos"])
    assert queued_count(agent.buffer) == 0
