"""End-to-end behaviour of the long-running agent around its folders and its server: offline
queueing, a server crash mid-batch, slowly written files, vanished and emptied folders."""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    acknowledged_files,
    catalog_rows,
    free_port,
    make_agent,
    queued_count,
    sha256_of,
    sqlite_rows,
    start_server,
    tree_hashes,
    wait_until,
)
from tests.support.photos import make_jpeg, make_raw_like, write_slowly
from tests.support.pixels import jpeg_bytes
from tests.support.pki import TestPki
from tests.support.stored import library_bytes, library_hashes, library_sha, library_versions_at

pytestmark = pytest.mark.e2e

SHOOT = datetime(2024, 6, 1, 10, 0, 0)
STATUS_POLL_S = 0.25


def _status_where(agent: AgentHandle, check: Callable[[dict[str, Any]], bool], what: str,
                  timeout_s: float = 30) -> dict[str, Any]:
    """Polls `photonic status --json` until check(status) holds; returns that status."""
    def probe() -> dict[str, Any] | None:
        status = agent.status()
        return status if check(status) else None
    found: dict[str, Any] = wait_until(
        probe, timeout_s, STATUS_POLL_S,
        f"status: {what}; agent log:\n{agent.daemon.log()[-2000:]}")
    return found


def _start(agent: AgentHandle, daemons: list[Daemon]) -> AgentHandle:
    daemons.append(agent.daemon)
    return agent.start()


def _library_matches(server: ServerHandle, folder: Path) -> bool:
    return library_hashes(server, "laptop", "photos") == tree_hashes(folder)


def _watch_state(status: dict[str, Any], name: str = "photos") -> str:
    return str(next(w["state"] for w in status["watches"] if w["name"] == name))


def test_agent_queues_while_the_server_is_down_and_delivers_when_it_is_up(
        tmp_path: Path, pki: TestPki, daemons: list[Daemon]) -> None:
    """With no server listening the agent reports OFFLINE with its files queued; once the
    server starts on that address, everything queued reaches the library."""
    port = free_port()
    agent = make_agent(tmp_path / "laptop", pki, "laptop", [f"127.0.0.1:{port}"])
    photos = agent.watches["photos"]
    for i in range(5):
        make_jpeg(photos / f"IMG_{i:04d}.jpg", seed=1000 + i, capture_time=SHOOT)
    _start(agent, daemons)
    # The agent spends most of each retry dialing (CONNECTING); its OFFLINE spells between
    # dials grow with the backoff, so a slow `photonic status` still sees one within a minute.
    _status_where(agent, lambda s: s["running"] and s["state"] == "offline"
                  and s["queue"]["files"] == 5, "OFFLINE with 5 files queued", timeout_s=60)
    server = start_server(tmp_path / "server", pki, port=port)
    daemons.append(server.daemon)
    wait_until(lambda: _library_matches(server, photos), 90, 0.2,
               f"the queued photos to arrive; agent log:\n{agent.daemon.log()[-2000:]}")
    _status_where(agent, lambda s: s["queue"]["files"] == 0, "an empty queue")


def test_server_killed_mid_batch_loses_nothing_it_acknowledged(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """SIGKILL of the server while ~100 files sync: every file the agent had already dropped
    from its queue is in the library byte-identical after the restart, and once the agent
    reconnects every file arrives."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server,
                       extra={"network": {"max_bandwidth": "1MB/s"}})
    photos = agent.watches["photos"]
    for i in range(100):
        make_raw_like(photos / f"card/DSC_{i:04d}.NEF", seed=2000 + i, size_bytes=60_000,
                      capture_time=SHOOT + timedelta(seconds=i))
    sources = {("photos", rel): sha for rel, sha in tree_hashes(photos).items()}
    _start(agent, daemons)
    wait_until(lambda: len(acknowledged_files(agent.buffer)) >= 10, 60, 0.05,
               f"the first acknowledgements; agent log:\n{agent.daemon.log()[-2000:]}")
    server.daemon.kill()
    acked = acknowledged_files(agent.buffer)
    assert 10 <= len(acked) < 100, "the server was not killed mid-batch; make the batch slower"
    server.start()
    library = library_hashes(server, "laptop", "photos")
    for (watch, rel), sha in acked.items():
        assert sources[(watch, rel)] == sha
        assert rel in library, f"acknowledged {rel} is not in the library after the crash"
        assert library[rel] == sha, f"acknowledged {rel} differs in the library"
    wait_until(lambda: _library_matches(server, photos), 90, 0.2,
               f"all 100 files after the restart; agent log:\n{agent.daemon.log()[-2000:]}")


def test_slowly_written_jpeg_is_uploaded_once_complete(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """A JPEG written in pieces with pauses shorter than settle_delay (and longer in total than
    the reconcile interval) is uploaded once, after it stopped changing: one version on the
    server, byte-identical, never a half-written name.v1.jpg."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server,
                       extra={"agent": {"settle_delay": "500ms", "rescan_interval": "1s"}})
    _start(agent, daemons)
    _status_where(agent, lambda s: s["state"] == "monitoring", "MONITORING")
    data = jpeg_bytes(seed=3000, width=1600, height=1200)
    target = agent.watches["photos"] / "IMG_3000.jpg"
    write_slowly(target, data, pieces=12, pause_s=0.15)
    wait_until(lambda: queued_count(agent.buffer) == 0
               and library_sha(server, "laptop", "photos", target.name) == sha256_of(target),
               30, 0.2,
               f"the finished JPEG in the library; agent log:\n{agent.daemon.log()[-2000:]}")
    versions = library_versions_at(server, "laptop", "photos", target.name)
    held = {name: library_bytes(server, "laptop", "photos", name) or b"" for name in versions}
    prefixes = sorted(name for name, got in held.items()
                      if len(got) < len(data) and data.startswith(got))
    assert versions == {target.name: sha256_of(target)}, (
        f"expected exactly one complete version, got {sorted(versions)}; half-written "
        f"prefixes of the file among them: {prefixes}. A scan queued the file before it "
        "settled (does the periodic reconcile scan apply settle_delay?)")
    rows = catalog_rows(server, "SELECT COUNT(*) FROM versions")
    assert rows[0][0] == 1, "the catalog recorded more than one version"


def _synced_running_agent(tmp_path: Path, pki: TestPki, server: ServerHandle,
                          daemons: list[Daemon], count: int) -> AgentHandle:
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    for i in range(count):
        make_raw_like(agent.watches["photos"] / "trip" / f"DSC_{i:04d}.NEF", seed=4000 + i,
                      size_bytes=20_000)
    _start(agent, daemons)
    wait_until(lambda: _library_matches(server, agent.watches["photos"]), 60, 0.2,
               "the first sync")
    _status_where(agent, lambda s: s["state"] == "monitoring" and _watch_state(s) == "ok"
                  and s["queue"]["files"] == 0, "synced, watch OK")
    return agent


def _watch_row_state(agent: AgentHandle) -> str:
    return str(sqlite_rows(agent.buffer / "agent.db",
                           "SELECT state FROM watches WHERE name = 'photos'")[0][0])


def test_vanished_watch_folder_deletes_nothing_and_is_reported_missing(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """Removing the whole watch folder (an unmounted volume) while the agent runs is reported
    as watch state "missing" by `photonic status`, and the server's library is untouched."""
    agent = _synced_running_agent(tmp_path, pki, server, daemons, 5)
    before = library_hashes(server, "laptop", "photos")
    shutil.rmtree(agent.watches["photos"])
    status = _status_where(agent, lambda s: _watch_state(s) == "missing", "watch missing")
    assert status["running"], status
    wait_until(lambda: _watch_row_state(agent) == "missing", 30, 0.2,
               "the agent's reconcile scan to record the watch as missing")
    assert library_hashes(server, "laptop", "photos") == before
    assert agent.daemon.running


def test_emptied_watch_folder_is_frozen_and_deletes_nothing(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """Deleting all of 25 synced files from a watch folder freezes the watch (status "frozen")
    instead of propagating deletions: the server's library keeps every file."""
    agent = _synced_running_agent(tmp_path, pki, server, daemons, 25)
    before = library_hashes(server, "laptop", "photos")
    assert len(before) == 25
    for path in (agent.watches["photos"] / "trip").iterdir():
        path.unlink()
    status = _status_where(agent, lambda s: _watch_state(s) == "frozen", "watch frozen")
    assert status["running"], status
    assert library_hashes(server, "laptop", "photos") == before
    assert agent.daemon.running


def test_agent_metrics_port_serves_prometheus_text_and_health(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """With agent.metrics_port set, a running agent serves its counters to Prometheus and a
    JSON health page on loopback."""
    port = free_port()
    agent = make_agent(tmp_path / "a", pki, "laptop", server, extra={"agent": {
        "metrics_port": port}})
    make_jpeg(agent.watches["photos"] / "IMG_1.jpg", seed=7, capture_time=SHOOT)
    _start(agent, daemons)
    wait_until(lambda: len(acknowledged_files(agent.buffer)) == 1, 30, 0.2, "photo synced")

    def scrape(path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            body: bytes = reply.read()
            return body.decode()

    def uploaded() -> float:
        for line in scrape("/metrics").splitlines():
            if line.startswith("photonic_photos_processed_total{") and "uploaded" in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    wait_until(lambda: uploaded() == 1.0, 10, 0.2, "uploaded counter")
    assert 'photonic_agent_state{state="monitoring"} 1.0' in scrape("/metrics")
    health = json.loads(scrape("/healthz"))
    assert (health["state"], health["queue_files"], health["errored"]) == ("monitoring", 0, 0)
