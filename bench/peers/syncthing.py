"""A Syncthing pair on loopback (send-only -> receive-only), timed through its REST API."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import trash
from bench.peers.base import WATCH_DELAY_S, SyncRun, count_files, free_port, place_warmup
from bench.procstat import ProcUsage, tree_usage, wait_until

_FOLDER_ID = "bench"
_NANOS = re.compile(r"(\.\d{6})\d+")
_POLL_S = 0.05
_SYNC_TIMEOUT_S = 1800.0
# Off: anything that would leave loopback or phone home. setLowPriority off: photonic runs at
# normal priority too. Everything else keeps Syncthing's defaults.
_OPTIONS = {
    "globalAnnounceEnabled": "false",
    "localAnnounceEnabled": "false",
    "relaysEnabled": "false",
    "natEnabled": "false",
    "urAccepted": "-1",
    "autoUpgradeIntervalH": "0",
    "crashReportingEnabled": "false",
    "startBrowser": "false",
    "setLowPriority": "false",
}


@dataclass
class _Node:
    """One Syncthing instance: its home, ports, API key, folder path and running process."""

    name: str
    home: Path
    folder: Path
    listen_port: int
    gui_port: int
    api_key: str
    device_id: str = ""
    proc: subprocess.Popen[bytes] | None = None

    def rest(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.gui_port}{path}",
            method=method,
            headers={"X-API-Key": self.api_key},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
        return json.loads(body) if body else None


class SyncthingPeer:
    """Node A shares a send-only folder with node B's receive-only folder; fsWatcher on."""

    name = "syncthing"

    def __init__(self, work_dir: Path, *, fs_watcher_delay_s: int = WATCH_DELAY_S) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="syncthing-", dir=work_dir))
        self._delay_s = fs_watcher_delay_s
        self._a = self._make_node("a", self._tmp / "a-folder")
        self._b = self._make_node("b", self._tmp / "dest")
        self.destination = self._b.folder
        self._expected_files = 0
        self._payload = 0

    def _make_node(self, name: str, folder: Path) -> _Node:
        home = self._tmp / f"{name}-home"
        subprocess.run(
            [
                "syncthing",
                "generate",
                f"--home={home}",
                "--no-default-folder",
                "--skip-port-probing",
            ],
            check=True,
            capture_output=True,
        )
        tree = ET.parse(home / "config.xml")
        device = tree.getroot().find("device")
        assert device is not None
        api_key = os.urandom(16).hex()
        return _Node(name, home, folder, free_port(), free_port(), api_key, device.get("id", ""))

    def _write_config(self, node: _Node, peer: _Node, folder_type: str) -> None:
        path = node.home / "config.xml"
        tree = ET.parse(path)
        root = tree.getroot()
        options = root.find("options")
        gui = root.find("gui")
        assert options is not None and gui is not None
        _set(options, "listenAddress", f"tcp://127.0.0.1:{node.listen_port}")
        for key, value in _OPTIONS.items():
            _set(options, key, value)
        _set(gui, "address", f"127.0.0.1:{node.gui_port}")
        _set(gui, "apikey", node.api_key)
        for old in root.findall("folder"):
            root.remove(old)
        for old in root.findall("device"):
            if old.get("id") == peer.device_id:
                root.remove(old)
        remote = ET.SubElement(
            root, "device", id=peer.device_id, name=peer.name, compression="metadata"
        )
        ET.SubElement(remote, "address").text = f"tcp://127.0.0.1:{peer.listen_port}"
        folder = ET.Element(
            "folder",
            id=_FOLDER_ID,
            label=_FOLDER_ID,
            path=str(node.folder),
            type=folder_type,
            rescanIntervalS="3600",
            fsWatcherEnabled="true",
            fsWatcherDelayS=str(self._delay_s),
        )
        for device_id in (node.device_id, peer.device_id):
            ET.SubElement(folder, "device", id=device_id)
        root.insert(0, folder)
        tree.write(path)
        # Syncthing refuses a folder whose marker is missing (it guards against unmounted disks).
        (node.folder / ".stfolder").mkdir(parents=True, exist_ok=True)

    def _start(self) -> float:
        started_wall = time.time()
        for node in (self._a, self._b):
            log = (self._tmp / f"{node.name}.log").open("ab")
            node.proc = subprocess.Popen(
                [
                    "syncthing",
                    "serve",
                    f"--home={node.home}",
                    "--no-browser",
                    "--no-restart",
                    "--no-upgrade",
                    "--logflags=3",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "STNORESTART": "1", "STNOUPGRADE": "1"},
            )
        return started_wall

    def _stop(self) -> None:
        for node in (self._a, self._b):
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
                try:
                    node.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(timeout=10)
            node.proc = None

    def _usage(self) -> tuple[ProcUsage, ProcUsage]:
        return _tree_usage(self._a), _tree_usage(self._b)

    def _in_sync(self, scanned_after: float) -> bool:
        try:
            stats = self._a.rest("/rest/stats/folder")
            status = self._b.rest(f"/rest/db/status?folder={_FOLDER_ID}")
            conns = self._a.rest("/rest/system/connections")
        except OSError:
            return False  # not listening yet
        last_scan = stats.get(_FOLDER_ID, {}).get("lastScan", "")
        return (
            _parse_time(last_scan) >= scanned_after
            and conns["connections"].get(self._b.device_id, {}).get("connected", False)
            and status["state"] == "idle"
            and status["needFiles"] == 0
            and status["globalFiles"] == self._expected_files
            and status["localFiles"] == self._expected_files
        )

    def _wait_in_sync(self, started: float, scanned_after: float, what: str) -> float:
        wait_until(
            lambda: self._in_sync(scanned_after),
            timeout_s=_SYNC_TIMEOUT_S,
            interval_s=_POLL_S,
            what=what,
        )
        return time.perf_counter() - started

    def _bytes_sent(self) -> int:
        conns = self._a.rest("/rest/system/connections")
        return int(conns["total"]["outBytesTotal"])

    def first_sync(self, source: Path, files: int, payload_bytes: int) -> SyncRun:
        # Syncthing shares a folder in place: A's folder is the source itself.
        self._a.folder = source
        self._expected_files, self._payload = files, payload_bytes
        self._write_config(self._a, self._b, "sendonly")
        self._write_config(self._b, self._a, "receiveonly")
        started = time.perf_counter()
        wall = self._start()
        seconds = self._wait_in_sync(started, wall, "Syncthing's first sync")
        return self._run(seconds, files, payload_bytes)

    def cold_sync(self, source: Path, files: int, payload_bytes: int) -> SyncRun:
        """Both instances launched inside the clock (start-up, connecting, A's first scan and
        hashing, B's pull and fsyncs); the CPU is each instance's whole life so far."""
        return self.first_sync(source, files, payload_bytes)

    def warm_sync(self, incoming: Path, files: int, payload_bytes: int, warmup: Path) -> SyncRun:
        """Both instances up, paired, the folder shared (empty) and one warm-up photo synced;
        then incoming is renamed into A's folder and the clock runs until B has every file
        (B's database lists it only once it is written and fsynced), idle, nothing needed."""
        self._a.folder = self._tmp / "a-watch"
        self._write_config(self._a, self._b, "sendonly")
        self._write_config(self._b, self._a, "receiveonly")
        self._expected_files = 1
        self._start()
        place_warmup(warmup, self._a.folder)
        self._wait_in_sync(time.perf_counter(), 0.0, "Syncthing's warm-up photo")
        before_a, before_b = self._usage()
        sent_before = self._bytes_sent()
        started = time.perf_counter()
        os.rename(incoming, self._a.folder / incoming.name)
        self._expected_files += files
        seconds = self._wait_in_sync(started, 0.0, "Syncthing to sync the photos that appeared")
        after_a, after_b = self._usage()
        return SyncRun(
            seconds, files, payload_bytes, self._bytes_sent() - sent_before,
            after_a.minus(before_a), after_b.minus(before_b),
        )

    def _run(self, seconds: float, files: int, payload: int) -> SyncRun:
        sender, receiver = self._usage()
        return SyncRun(seconds, files, payload, self._bytes_sent(), sender, receiver)

    def resync_unchanged(self) -> SyncRun:
        self._stop()
        started = time.perf_counter()
        wall = self._start()
        seconds = self._wait_in_sync(started, wall, "Syncthing to be in sync after a restart")
        return self._run(seconds, 0, 0)

    def incremental(self, add_files: Callable[[], tuple[int, int]]) -> SyncRun:
        before_a, before_b = self._usage()
        sent_before = self._bytes_sent()
        started = time.perf_counter()
        files, payload = add_files()
        self._expected_files += files
        seconds = self._wait_in_sync(started, 0.0, "Syncthing to pick up new files")
        after_a, after_b = self._usage()
        return SyncRun(
            seconds,
            files,
            payload,
            self._bytes_sent() - sent_before,
            after_a.minus(before_a),
            after_b.minus(before_b),
        )

    def received(self) -> tuple[int, int]:
        """Files and bytes in B's folder, excluding Syncthing's own marker and temp entries."""
        files, total = count_files(self._b.folder)
        return files, total

    def close(self) -> None:
        self._stop()
        trash.discard(self._tmp)


def _tree_usage(node: _Node) -> ProcUsage:
    """Syncthing runs as a monitor process plus the worker it forks, even with --no-restart."""
    assert node.proc is not None
    return tree_usage(node.proc.pid)


def _set(parent: ET.Element, tag: str, text: str) -> None:
    element = parent.find(tag)
    if element is None:
        element = ET.SubElement(parent, tag)
    element.text = text


def _parse_time(text: str) -> float:
    """Syncthing's RFC 3339 timestamps (nanoseconds, offset) as Unix seconds; 0 if unset."""
    if not text or text.startswith("0001"):
        return 0.0
    # Python parses at most microseconds; Syncthing writes nanoseconds.
    return datetime.fromisoformat(_NANOS.sub(r"\1", text)).timestamp()
