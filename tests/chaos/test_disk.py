"""Disk full, on real size-limited filesystems: the server's storage filling mid-sync (the
min_free_space reserve, and a genuinely full disk), and the agent's ingest buffer (the
max_buffer_size bound, and a genuinely full disk). Intake stops with a clear status and
metric, nothing half-written is visible, and the sync completes once space is freed."""

from __future__ import annotations

import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.diskfull import fill_leaving, free_ballast, size_limited_fs
from tests.chaos.scenario import final_verification, folders_of, wait_converged, write_photos
from tests.chaos.tally import TALLY
from tests.chaos.verify import verify_all
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    free_port,
    make_agent,
    sha256_of,
    start_server,
    wait_until,
)
from tests.support.pki import TestPki

pytestmark = pytest.mark.chaos

MIB = 1 << 20


@pytest.fixture
def small_storage(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB filesystem mounted where the server keeps its storage."""
    with size_limited_fs(tmp_path / "server" / "storage", 48) as mount:
        yield mount


def _metric(server: ServerHandle, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def _start(tmp_path: Path, pki: TestPki, min_free: int | str,
           daemons: list[Daemon]) -> ServerHandle:
    http_port = free_port()
    server = start_server(tmp_path / "server", pki, extra={
        "server": {"web_ui_port": http_port}, "storage": {"min_free_space": min_free}})
    server.http_port = http_port
    daemons.append(server.daemon)
    return server


def _nothing_half_written(server: ServerHandle, agent: AgentHandle) -> None:
    """Mid-outage: every photo already in the library is whole and recorded; only photos not
    yet sent may be missing."""
    report = verify_all(server.storage, folders_of([agent]), [agent.buffer], allow_queued=10**6)
    # A library link whose catalog row could not be written (the disk was full) is whole
    # content; the agent's retry records it once space returns.
    unexpected = [p for p in report.problems
                  if not p.startswith("LOST ") and not p.endswith("has no catalog row")]
    assert not unexpected, report.summary()
    assert report.photos_lost > 0, "the disk filled before the sync finished"
    for path in (server.storage / "library").rglob("*"):
        if path.is_file():
            sha = sha256_of(path)
            obj = server.storage / "objects" / sha[:2] / sha[2:4] / sha
            assert obj.is_file() and os.path.samefile(path, obj), f"{path} is not whole"


def _agent(tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon],
           extra: dict[str, Any] | None = None) -> AgentHandle:
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server, extra=extra)
    daemons.append(agent.daemon)
    return agent


@pytest.mark.local_objects("fills the local disk that holds the object store")
def test_server_reserve_reached_stops_intake_and_resumes_when_freed(
        tmp_path: Path, pki: TestPki, small_storage: Path, daemons: list[Daemon]) -> None:
    """With less free space than storage.min_free_space, intake stops: agents are answered
    RESOURCE_EXHAUSTED with a clear message and photonic_server_storage_full is 1; once space
    is freed, the agent's own retries complete the sync."""
    # The reserve must also cover the catalog's write-ahead log, which grows with each commit.
    server = _start(tmp_path, pki, "8MB", daemons)
    fill_leaving(small_storage, 10 * MIB)
    TALLY.disk_faults += 1
    agent = _agent(tmp_path, pki, server, daemons)
    write_photos(agent.watches["photos"], range(120))
    agent.start()
    wait_until(lambda: _metric(server, "photonic_server_storage_full") == 1.0, 60,
               message="photonic_server_storage_full to be 1")
    agent.daemon.wait_for_log("server storage is full")
    _nothing_half_written(server, agent)
    free_ballast(small_storage)
    wait_converged(server, [agent], timeout_s=120)
    assert _metric(server, "photonic_server_storage_full") == 0.0
    final_verification(server, [agent])


@pytest.mark.local_objects("fills the local disk that holds the object store")
def test_server_disk_genuinely_full_stops_intake_and_resumes_when_freed(
        tmp_path: Path, pki: TestPki, small_storage: Path, daemons: list[Daemon]) -> None:
    """With no reserve configured the disk really fills (ENOSPC mid-chunk, mid-catalog): no
    partial file is visible, the server stays up, and the sync completes once space is freed."""
    server = _start(tmp_path, pki, 0, daemons)
    fill_leaving(small_storage, 3 * MIB)
    TALLY.disk_faults += 1
    agent = _agent(tmp_path, pki, server, daemons)
    write_photos(agent.watches["photos"], range(120))
    agent.start()
    wait_until(lambda: _metric(server, "photonic_server_storage_full") == 1.0, 60,
               message="photonic_server_storage_full to be 1")
    assert server.daemon.running
    _nothing_half_written(server, agent)
    free_ballast(small_storage)
    wait_converged(server, [agent], timeout_s=120)
    final_verification(server, [agent])


def _ingest(root: Path, card: Path, pki: TestPki, server: ServerHandle,
            daemons: list[Daemon], max_buffer: str) -> AgentHandle:
    agent = make_agent(root, pki, "laptop", server, {"card": card}, extra={"agent": {
        "max_buffer_size": max_buffer,
        "watch": [{"path": str(card), "name": "card", "mode": "ingest"}]}})
    daemons.append(agent.daemon)
    return agent


def test_ingest_buffer_bound_copies_in_turns_until_everything_is_synced(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """An ingest card larger than max_buffer_size: the agent copies what fits, skips the rest
    as "buffer full", prunes synced copies, and copies the rest on later passes."""
    root = tmp_path / "laptop"
    agent = _ingest(root, root / "card", pki, server, daemons, "1MB")
    write_photos(agent.watches["card"], range(40))
    TALLY.disk_faults += 1
    agent.start()
    wait_converged(server, [agent], timeout_s=120)
    final_verification(server, [agent])
    assert "buffer full" in agent.daemon.log() or "buffer_full" in agent.daemon.log()


def test_ingest_buffer_on_a_full_disk_recovers_when_space_returns(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """The agent's buffer disk is genuinely full: copies fail with ENOSPC, the agent keeps
    running and loses nothing, and the card is synced once space returns."""
    root = tmp_path / "laptop"
    with size_limited_fs(root / "buffer", 16) as buffer:
        agent = _ingest(root, root / "card", pki, server, daemons, "1GB")
        agent.start()
        wait_until(lambda: (buffer / "agent.db").exists(), 30, message="the agent database")
        fill_leaving(buffer, 1 * MIB)
        TALLY.disk_faults += 1
        write_photos(agent.watches["card"], range(40))
        wait_until(lambda: "No space left" in agent.daemon.log()
                   or "ENOSPC" in agent.daemon.log(), 60, message="the agent to hit ENOSPC")
        assert agent.daemon.running
        free_ballast(buffer)
        wait_converged(server, [agent], timeout_s=120)
        final_verification(server, [agent])
