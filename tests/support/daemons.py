"""Runs the real photonic daemons as subprocesses for end-to-end and chaos tests: configs
written to disk, real ports on 127.0.0.1, real mutual TLS, logs kept for failure messages."""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.pki import TestPki

PYTHON = sys.executable


def free_port() -> int:
    """A loopback TCP port nothing listens on, for a daemon the test is about to start.

    Not the kernel's choice (bind to port 0): that port is closed again before the daemon
    binds it, and meanwhile it is in the ephemeral range every outgoing connection takes its
    port from, so with several test processes at work (pytest -n) another's connection or
    free_port could take it. Instead each test process walks a slice of its own of the ports
    below the ephemeral range, from a random start (two separate pytest sessions rarely meet),
    and hands out the next one that binds now."""
    return _PORTS.next()


class _PortWalk:
    """This process's slice of [LOW, the ephemeral range's start), walked in turn: a port
    handed out is not handed out again before the whole slice has been."""

    LOW = 10_000

    def __init__(self) -> None:
        high = _ephemeral_start()
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
        index = int(worker[2:]) if worker[2:].isdigit() else 0
        count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), index + 1)
        size = (high - self.LOW) // count
        self._first = self.LOW + index * size
        self._size = size
        self._offset = random.randrange(size)

    def next(self) -> int:
        for _ in range(self._size):
            port = self._first + self._offset
            self._offset = (self._offset + 1) % self._size
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue  # in use (or held in TIME_WAIT): the next one
                return port
        raise RuntimeError(f"no free port in {self._first}-{self._first + self._size - 1}")


def _ephemeral_start() -> int:
    """Where Linux starts taking ports for outgoing connections (32768 by default)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768
    return low if low > _PortWalk.LOW + 1_000 else 32_768


_PORTS = _PortWalk()


def wait_until(predicate: Callable[[], object], timeout_s: float = 30.0,
               interval_s: float = 0.05, message: str = "condition") -> Any:
    """Polls predicate until it returns something truthy; fails the test with message."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
        time.sleep(interval_s)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    """{relative posix path: sha256} of every regular file below root (symlinks skipped)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[path.relative_to(root).as_posix()] = sha256_of(path)
    return out


def run_cli(*args: str, cwd: Path | None = None, timeout_s: float = 120,
            check: bool = False, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    """`photonic ARGS` as a process; env: variables added to the tests' environment."""
    proc = subprocess.run([PYTHON, "-m", "photonic.cli", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout_s, env={**_env(), **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"photonic {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def web_token(server: ServerHandle, name: str = "") -> str:
    """A new dashboard token for server, made the way an admin makes one (`photonic web
    token create`, which prints it as its last line); name is the audit's `web:<name>`."""
    named = ("--name", name) if name else ()
    made = run_cli("web", "token", "create", "--config", str(server.config_path), *named,
                   check=True)
    return made.stdout.strip().splitlines()[-1]


def web_get(server: ServerHandle, path: str, token: str) -> Any:
    """The JSON body of a GET on server's web API with a dashboard token (an HTTP error
    raises, so a test sees the status)."""
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def metric_total(server: ServerHandle, name: str) -> float:
    """The sum of a metric's samples (every label set) on the server's /metrics; 0 when it
    has none."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/metrics",
                                timeout=5) as reply:
        text = reply.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    from tests.support.backend import daemon_environment
    return {**env, **daemon_environment()}


@dataclass
class Daemon:
    """One photonic daemon subprocess with its stderr log on disk."""

    name: str
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log_text: str = field(default="", repr=False)
    _log_read: int = field(default=0, repr=False)
    _log_decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"), repr=False)

    def start(self) -> Daemon:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen([PYTHON, "-m", "photonic.cli", *self.args],
                                     stdout=log, stderr=log, env=_env(),
                                     start_new_session=True)
        log.close()
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """The whole log so far, read from where the last call stopped: tests poll logs 20
        times a second while a hostile-client server's log grows to megabytes, and decoding
        all of it each time takes CPU from the daemons under test."""
        try:
            with open(self.log_path, "rb") as f:
                if os.fstat(f.fileno()).st_size < self._log_read:  # replaced: from the start
                    self._log_text, self._log_read = "", 0
                    self._log_decoder.reset()
                f.seek(self._log_read)
                new = f.read()
        except FileNotFoundError:
            return ""
        if new:
            self._log_read += len(new)
            self._log_text += self._log_decoder.decode(new)
        return self._log_text

    def wait_for_log(self, needle: str, timeout_s: float = 30, after: int = 0) -> None:
        wait_until(lambda: self.log().find(needle, after) >= 0 or self._died(), timeout_s,
                   message=f"{self.name} log to contain {needle!r}")
        if self.log().find(needle, after) < 0:
            raise AssertionError(f"{self.name} exited:\n{self.log()[-4000:]}")

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def terminate(self, timeout_s: float = 20) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} did not stop on SIGTERM:\n{self.log()[-3000:]}") from None

    def task_dump(self, timeout_s: float = 5) -> str:
        """What the running daemon's event loop waits on (its SIGUSR2 dump), for a failure
        message; "" when it is not running or does not answer."""
        if not self.running or self.proc is None:
            return ""
        start = len(self.log())
        self.proc.send_signal(signal.SIGUSR2)
        try:
            wait_until(lambda: "task_dump_end" in self.log()[start:], timeout_s,
                       message=f"{self.name} to dump its tasks")
        except AssertionError:
            return f"({self.name} wrote no task dump within {timeout_s:g}s)"
        return self.log()[start:]

    def kill(self) -> None:
        """SIGKILL: no cleanup, exactly like a crash or a power cut of the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class ServerHandle:
    root: Path
    pki: TestPki
    port: int
    config_path: Path
    daemon: Daemon
    http_port: int = 0

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def library(self, agent_id: str, watch: str) -> Path:
        return self.storage / "library" / agent_id / watch

    def objects(self) -> list[Path]:
        return [p for p in (self.storage / "objects").rglob("*") if p.is_file()]

    def start(self) -> ServerHandle:
        mark = len(self.daemon.log())
        self.daemon.start()
        self.daemon.wait_for_log("event=server_started", after=mark)
        return self


def write_server_config(root: Path, pki: TestPki, *, port: int | None = None,
                        extra: dict[str, Any] | None = None) -> tuple[Path, int]:
    port = port or free_port()
    config: dict[str, Any] = {
        "server": {"bind_address": f"127.0.0.1:{port}", "storage_path": str(root / "storage"),
                   "web_ui_port": 0},
        "storage": {"min_free_space": "1MB"},
        "security": {"cert_path": str(pki.server_cert), "key_path": str(pki.server_key),
                     "ca_path": str(pki.ca)},
        "agents": {"admin": {"scopes": ["admin"]}},
        "default_scopes": ["sync"],
    }
    _merge(config, extra or {})
    # Every server on the backend PHOTONIC_TEST_BACKEND names (tests/support/backend.py).
    from tests.support.backend import apply_backend
    path = root / "server.yaml"
    apply_backend(config, yaml.safe_load(path.read_text("utf-8")) if path.exists() else None)
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path, port


def start_server(root: Path, pki: TestPki, *, extra: dict[str, Any] | None = None,
                 port: int | None = None) -> ServerHandle:
    path, port = write_server_config(root, pki, port=port, extra=extra)
    daemon = Daemon("server", ["server", "--config", str(path)], root / "server.log")
    return ServerHandle(root, pki, port, path, daemon).start()


@dataclass
class AgentHandle:
    root: Path
    agent_id: str
    config_path: Path
    watches: dict[str, Path]
    daemon: Daemon
    summaries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def buffer(self) -> Path:
        return self.root / "buffer"

    def start(self) -> AgentHandle:
        self.daemon.start()
        return self

    def once(self, timeout_s: float = 120) -> dict[str, Any]:
        """Runs `photonic agent --once` and returns its JSON summary."""
        proc = run_cli("agent", "--config", str(self.config_path), "--once",
                       timeout_s=timeout_s)
        if proc.returncode != 0:
            raise AssertionError(f"agent --once exited {proc.returncode}:\n{proc.stderr[-4000:]}")
        summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        self.summaries.append(summary)
        return summary

    def status(self) -> dict[str, Any]:
        proc = run_cli("status", "--config", str(self.config_path), "--json", check=True)
        data: dict[str, Any] = json.loads(proc.stdout)
        return data


def write_agent_config(root: Path, pki: TestPki, agent_id: str, endpoints: Sequence[str],
                       watches: Iterable[tuple[str, Path]], *,
                       extra: dict[str, Any] | None = None) -> Path:
    config: dict[str, Any] = {
        "agent": {
            "id": agent_id, "server_endpoints": list(endpoints),
            "buffer_path": str(root / "buffer"),
            "watch": [{"path": str(p), "name": n} for n, p in watches],
            "settle_delay": "200ms", "incomplete_timeout": "3s", "rescan_interval": "2s",
        },
        "security": {"cert_path": str(pki.agent_cert(agent_id)),
                     "key_path": str(pki.agent_key(agent_id)), "ca_path": str(pki.ca)},
    }
    _merge(config, extra or {})
    root.mkdir(parents=True, exist_ok=True)
    path = root / "agent.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def make_agent(root: Path, pki: TestPki, agent_id: str, server: ServerHandle | Sequence[str],
               watches: dict[str, Path] | None = None, *,
               extra: dict[str, Any] | None = None) -> AgentHandle:
    """An agent (not started) watching root/photos (or the given folders)."""
    if watches is None:
        watches = {"photos": root / "photos"}
    for p in watches.values():
        p.mkdir(parents=True, exist_ok=True)
    endpoints = [server.endpoint] if isinstance(server, ServerHandle) else list(server)
    path = write_agent_config(root, pki, agent_id, endpoints, watches.items(), extra=extra)
    daemon = Daemon(f"agent-{agent_id}", ["agent", "--config", str(path)], root / "agent.log")
    return AgentHandle(root, agent_id, path, watches, daemon)


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def sqlite_rows(db_path: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """Rows from a daemon's SQLite database, read while the daemon may be writing (WAL).
    Never creates the database: a missing file raises OperationalError ("unable to open")."""
    conn = sqlite3.connect(db_path.absolute().as_uri() + "?mode=rw", timeout=10, uri=True)
    try:
        return list(conn.execute(sql, tuple(params)).fetchall())
    finally:
        conn.close()


def catalog_rows(server: ServerHandle, sql: str,
                 params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """Rows from the server's catalog wherever its catalog.url keeps it: the SQLite file (read
    beside the running daemon, as sqlite_rows) or its PostgreSQL database. sql is written with
    SQLite's ? placeholders and in the SQL both engines speak."""
    return config_catalog_rows(server.config_path, server.storage, sql, params)


def config_catalog_rows(config_path: Path, storage: Path, sql: str,
                        params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """catalog_rows for the server whose server.yaml is config_path and whose storage_path is
    storage; [] when its embedded catalog does not exist yet."""
    config = yaml.safe_load(config_path.read_text("utf-8")) if config_path.exists() else {}
    url = str((config.get("catalog") or {}).get("url", ""))
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg
        with psycopg.connect(url, autocommit=True) as conn:
            return [tuple(r) for r in conn.execute(
                sql.replace("%", "%%").replace("?", "%s").encode(), params)]
    path = Path(url[len("sqlite://"):]) if url else storage / "catalog.db"
    return sqlite_rows(path, sql, params) if path.exists() else []


def acknowledged_files(buffer: Path) -> dict[tuple[str, str], str]:
    """{(watch, relative path): sha256} of every file the server acknowledged to the agent:
    indexed with a synced hash and no longer in the agent's queue. Empty before the agent has
    created its database."""
    try:
        rows = sqlite_rows(
            buffer / "agent.db",
            "SELECT f.watch_name, f.rel_path, f.synced_sha256 FROM files f "
            "WHERE f.synced_sha256 != '' AND NOT EXISTS (SELECT 1 FROM queue q "
            "WHERE q.watch_name = f.watch_name AND q.rel_path = f.rel_path)")
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc) or "unable to open" in str(exc):
            return {}
        raise
    return {(str(w), str(r)): str(s) for w, r, s in rows}


def queued_count(buffer: Path) -> int:
    """How many files the agent's durable queue holds (0 before the agent made its DB)."""
    try:
        return int(sqlite_rows(buffer / "agent.db", "SELECT COUNT(*) FROM queue")[0][0])
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc) or "unable to open" in str(exc):
            return 0
        raise


def library_versions(library: Path, rel_path: str) -> dict[str, str]:
    """{file name: sha256} of rel_path in a library folder and every older version kept beside
    it (`name.vN.ext`, `name.vN~k.ext`)."""
    head = library / rel_path
    if not head.parent.is_dir():
        return {}
    return {p.name: sha256_of(p) for p in sorted(head.parent.iterdir())
            if p.is_file() and is_version_of(head.name, p.name)}


def is_version_of(name: str, candidate: str) -> bool:
    """Whether candidate is the file name itself or one of its kept older versions."""
    suffix = Path(name).suffix
    stem = name[: len(name) - len(suffix)] if suffix else name
    pattern = re.compile(re.escape(stem) + r"(\.v\d+(~\d+)?)?" + re.escape(suffix))
    return bool(pattern.fullmatch(candidate))
