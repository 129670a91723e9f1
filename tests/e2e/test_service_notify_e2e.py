"""The daemons under a service manager: with NOTIFY_SOCKET (and WATCHDOG_USEC) pointing at a
test socket, `photonic server` and `photonic agent` report READY=1 once they serve, WATCHDOG=1
while they run, and on SIGTERM STOPPING=1, then drain and exit 0 with nothing lost."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemons import (
    Daemon,
    ServerHandle,
    acknowledged_files,
    make_agent,
    run_cli,
    start_server,
    tree_hashes,
    wait_until,
)
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import library_hashes

pytestmark = pytest.mark.e2e


class NotifyListener:
    """A systemd stand-in: the datagrams one daemon sent to its NOTIFY_SOCKET, read as they
    come (by a thread, as systemd reads its socket: a queue left full holds the sender's
    datagrams back, and Linux queues only net.unix.max_dgram_qlen, 10, of them)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.1)
        self.messages: list[str] = []
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"notify {path.name}",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                self.messages.append(self._sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def wait_for(self, message: str, timeout_s: float = 30) -> None:
        wait_until(lambda: message in self.messages, timeout_s,
                   message=f"{message} on {self.path.name} (got {self.messages[-5:]})")

    def close(self) -> None:
        self._closed.set()
        self._reader.join(5)
        self._sock.close()


@pytest.fixture
def listen(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], NotifyListener]]:
    """Makes a listener on a socket of that name, and points the environment the next daemon
    started inherits at it; every listener is closed at the end."""
    made: list[NotifyListener] = []

    with tempfile.TemporaryDirectory(prefix="pn-", dir="/tmp") as d:  # AF_UNIX: short paths
        def make(name: str) -> NotifyListener:
            made.append(NotifyListener(Path(d) / name))
            monkeypatch.setenv("NOTIFY_SOCKET", str(made[-1].path))
            monkeypatch.setenv("WATCHDOG_USEC", "400000")  # a beat every 0.2 s
            return made[-1]

        yield make
        for listener in made:
            listener.close()


def test_ready_watchdog_and_stopping_then_a_clean_drain(
        tmp_path: Path, pki: TestPki, listen: Callable[[str], NotifyListener],
        daemons: list[Daemon]) -> None:
    """Both daemons say READY=1 once they serve and beat WATCHDOG=1; the agent syncs photos
    meanwhile. SIGTERM while photos are still arriving: STOPPING=1, exit 0; every photo is
    acknowledged and stored byte-identical (the rest after a restart), none lost."""
    server_note = listen("server.sock")
    server = start_server(tmp_path / "server", pki)
    daemons.append(server.daemon)
    server_note.wait_for("READY=1")
    server_note.wait_for("WATCHDOG=1")

    agent_note = listen("agent.sock")
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    photos = agent.watches["photos"]
    for i in range(5):
        make_jpeg(photos / f"IMG_{i:04d}.jpg", seed=i)
    daemons.append(agent.start().daemon)
    agent_note.wait_for("READY=1")
    agent_note.wait_for("WATCHDOG=1")
    wait_until(lambda: len(acknowledged_files(agent.buffer)) == 5, 60,
               message="the first photos synced")

    for i in range(5, 25):  # more arrive, and the agent is told to stop in their midst
        make_jpeg(photos / f"IMG_{i:04d}.jpg", seed=i)
    wait_until(lambda: len(acknowledged_files(agent.buffer)) > 5, 60,
               message="the agent to be busy with the new photos")
    assert agent.daemon.terminate(60) == 0, agent.daemon.log()[-3000:]
    agent_note.wait_for("STOPPING=1", 5)
    assert agent_note.messages.count("READY=1") == 1
    assert agent_note.messages.index("READY=1") < agent_note.messages.index("STOPPING=1")

    agent.once()  # whatever was not yet sent is still queued or found by the scan
    assert library_hashes(server, "laptop", "photos") == tree_hashes(photos)
    assert len(acknowledged_files(agent.buffer)) == 25

    assert server.daemon.terminate(60) == 0, server.daemon.log()[-3000:]
    server_note.wait_for("STOPPING=1", 5)


def test_log_format_json_makes_every_daemon_line_a_json_object(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """`photonic --log-format json agent --once`: every line the agent logs is one JSON
    object with the key=value line's fields (ts, level, logger, msg) and its agent id."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    make_jpeg(agent.watches["photos"] / "IMG_1.jpg", seed=1)
    proc = run_cli("--log-format", "json", "agent", "--config", str(agent.config_path),
                   "--once", check=True)
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(r) for r in lines)
    assert all(r["agent"] == "laptop" for r in lines)
    assert any(r.get("event") for r in lines)
