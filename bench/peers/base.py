"""What every benchmarked tool offers the runner: first sync, unchanged re-sync, incremental."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench.procstat import ProcUsage


@dataclass(frozen=True)
class SyncRun:
    """One timed synchronisation: how long it took and what it cost on each side."""

    seconds: float
    files: int
    payload_bytes: int
    bytes_sent: int | None = None
    sender: ProcUsage | None = None
    receiver: ProcUsage | None = None


class SyncPeer(Protocol):
    """A tool that copies a source folder to a destination over loopback until it is durable."""

    name: str

    def first_sync(self, source: Path, files: int, payload_bytes: int) -> SyncRun:
        """Copies source (already on disk) into an empty destination; returns when all is there."""
        ...

    def resync_unchanged(self) -> SyncRun:
        """Restarts (or re-runs) the tool with nothing changed and waits until it is in sync."""
        ...

    def incremental(self, add_files: Callable[[], tuple[int, int]]) -> SyncRun:
        """Calls add_files (which writes new files into the source), times until they arrive."""
        ...

    def close(self) -> None:
        """Stops every process the peer started and removes its temporary state."""
        ...


WATCH_DELAY_S = 1
"""How long a watching tool waits after a change before it acts: Syncthing's fsWatcherDelayS
(its smallest value; the default is 10) and photonic's settle_delay, alike in the warm runs."""


class SymmetricPeer(Protocol):
    """A tool measured warm and cold alike (bench/symmetric.py says what each means)."""

    name: str

    def cold_sync(self, source: Path, files: int, payload_bytes: int) -> SyncRun:
        """Starts every process of the tool inside the clock, source already in place; returns
        when all is durable at the destination. The tool keeps running for later scenarios."""
        ...

    def warm_sync(self, incoming: Path, files: int, payload_bytes: int, warmup: Path) -> SyncRun:
        """Starts the tool on an empty folder and syncs the file warmup through it (so it is up
        and connected); then, inside the clock, renames the tree incoming into that folder and
        waits until every file of it is durable at the destination."""
        ...

    def close(self) -> None:
        ...


def relative_files(root: Path, under: str = "") -> list[str]:
    """The regular files below root as POSIX paths relative to root, each prefixed by under/."""
    prefix = f"{under}/" if under else ""
    found = []
    for dirpath, _dirs, names in os.walk(root):
        folder = Path(dirpath).relative_to(root).as_posix()
        for name in names:
            found.append(prefix + (name if folder == "." else f"{folder}/{name}"))
    return sorted(found)


def place_warmup(warmup: Path, folder: Path) -> str:
    """Writes a copy of warmup into folder (written and closed, as a camera card copy would)
    and returns its name there."""
    name = f"warmup-{warmup.name}"
    (folder / name).write_bytes(warmup.read_bytes())
    return name


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the daemons need it on argv)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    """True once something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def link_tree(source: Path, destination: Path) -> None:
    """A hard-linked copy of a cached set: instant, and the cache itself is never modified."""
    shutil.copytree(source, destination, copy_function=os.link, ignore=_skip_manifest)


def _skip_manifest(_directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "manifest.json"]


def count_files(root: Path) -> tuple[int, int]:
    """Number and total size of the regular files under root (what arrived at a destination)."""
    files = total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            files += 1
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return files, total
