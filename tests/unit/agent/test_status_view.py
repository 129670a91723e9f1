"""`photonic status` numbers (issue 19): a recent rate, eta_s null when unknown, and each
watch's file count from the agent's index."""

from __future__ import annotations

import json
from pathlib import Path

from photonic.agent.signature import FileSignature
from photonic.agent.statedb import AgentStateDB, WatchStatus
from photonic.agent.status_service import StatusReporter
from photonic.agent.status_view import collect, render
from photonic.agent.statusfile import LiveStatus, read_status, write_status
from photonic.agent.uploader import SyncTotals
from photonic.config import AgentConfig, load_agent_config
from photonic.models import ContentHash, ExifSummary
from photonic.rates import RECENT_RATE_WINDOW_S, RecentRate

AGENT_YAML = """\
agent:
  id: laptop
  server_endpoints: [127.0.0.1:50051]
  buffer_path: buffer
  watch:
    - path: photos
security:
  cert_path: certs/laptop.crt
  key_path: certs/laptop.key
  ca_path: certs/ca.crt
"""


def _config(tmp_path: Path) -> AgentConfig:
    (tmp_path / "photos").mkdir()
    (tmp_path / "buffer").mkdir()
    path = tmp_path / "agent.yaml"
    path.write_text(AGENT_YAML, encoding="utf-8")
    return load_agent_config(path)


def _live(config: AgentConfig, *, rate: float) -> None:
    """A running agent's status file (this process's pid) with the given recent rate."""
    write_status(config.buffer_path, LiveStatus(agent_id="laptop", state="syncing",
                                                recent_rate_bytes_per_s=rate))


def _index(config: AgentConfig, files: int) -> None:
    db = AgentStateDB(config.buffer_path / "agent.db")
    try:
        watch = config.watches[0]
        for i in range(files):
            db.record_file(watch.name, f"IMG_{i}.JPG",
                           signature=FileSignature(size=100, mtime_ns=i, inode=i, ctime_ns=i,
                                                   birth_ns=0),
                           sha256=ContentHash(f"{i:064x}"), exif=ExifSummary(),
                           source_path=watch.path / f"IMG_{i}.JPG")
        # What a watch that was never fully scanned says: no count of its own.
        db.set_watch_state(watch.name, watch.path, WatchStatus.OK, file_count=0)
    finally:
        db.close()


def test_recent_rate_covers_the_window_and_falls_to_zero_when_idle() -> None:
    rate = RecentRate()
    assert rate.add(0.0, 0) == 0.0
    assert rate.add(10.0, 10_000) == 1_000.0
    assert rate.add(20.0, 20_000) == 1_000.0
    idle_until = 20.0 + RECENT_RATE_WINDOW_S
    for t in range(21, int(idle_until) + 1):
        last = rate.add(float(t), 20_000)
    assert last == 0.0, "a rate since start would still read ~400 B/s here"


def test_recent_rate_restarts_when_the_totals_do() -> None:
    rate = RecentRate()
    rate.add(0.0, 0)
    rate.add(10.0, 50_000)
    assert rate.add(11.0, 100) == 0.0


def test_reporter_writes_the_recent_rate_into_the_status_file(tmp_path: Path) -> None:
    clock = iter([100.0, 110.0])
    totals = iter([SyncTotals(bytes_acknowledged=0), SyncTotals(bytes_acknowledged=20_000)])
    reporter = StatusReporter(tmp_path, LiveStatus(agent_id="laptop"), lambda: next(totals),
                              clock_s=lambda: next(clock))
    reporter.write()
    reporter.write()
    live = read_status(tmp_path)
    assert live is not None and live["recent_rate_bytes_per_s"] == 2_000.0


def test_eta_is_null_in_json_and_a_dash_in_text_while_nothing_moves(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _index(config, 3)
    _live(config, rate=0.0)
    data = collect(config)
    assert data["running"] and data["queue"]["bytes"] == 300
    assert data["progress"]["eta_s"] is None
    assert '"eta_s": null' in json.dumps(data)
    assert "ETA -" in render(data)


def test_eta_is_pending_bytes_over_the_recent_rate(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _index(config, 3)
    _live(config, rate=100.0)
    progress = collect(config)["progress"]
    assert (progress["rate_bytes_per_s"], progress["eta_s"]) == (100.0, 3.0)
    assert "ETA 3s" in render(collect(config))


def test_watch_files_come_from_the_index_not_the_last_scan_count(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _index(config, 14)
    (watch,) = collect(config)["watches"]
    assert watch["files"] == 14
    assert "14 files" in render(collect(config))

