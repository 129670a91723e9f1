"""photonic as a peer: drives the real `photonic` CLI (certs, server, agent --once) as subprocesses.

Contract relied on (bench/README.md lists it too):
- `photonic certs init --dir D`, `photonic certs issue AGENT --dir D`;
- `photonic server --config server.yaml`, `photonic agent --config agent.yaml [--once]` with the
  keys of photonic/config.py;
- `agent --once` exits 0 once its queue is empty and prints one JSON object on stdout with
  `files_uploaded`, `files_deduplicated`, `bytes_sent`, `files_hashed`, `seconds`;
- the server logs one key=value line per event on stderr, with `ts=YYYY-MM-DDTHH:MM:SS.mmmZ`,
  `event=file_committed` and `path=<path relative to the watch>`, written after the commit.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench import trash
from bench.peers.base import (
    WATCH_DELAY_S,
    SyncRun,
    free_port,
    place_warmup,
    port_open,
    relative_files,
)
from bench.procstat import CommandResult, ProcUsage, read_usage, run_measured, wait_until

_WATCH_NAME = "photos"
_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class OnceResult:
    """One `photonic agent --once`: the measured command and the JSON summary it printed."""

    command: CommandResult
    summary: dict[str, Any]

    @property
    def files_done(self) -> int:
        return int(self.summary.get("files_uploaded", 0)) + int(
            self.summary.get("files_deduplicated", 0)
        )

    @property
    def bytes_sent(self) -> int:
        return int(self.summary.get("bytes_sent", 0))


def photonic_argv() -> list[str]:
    """The installed `photonic` script next to this interpreter, else the module itself."""
    script = Path(sys.executable).with_name("photonic")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "photonic.cli"]


class ServerLog:
    """Follows the server's stderr file and indexes `event=file_committed` lines by path."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""
        self.committed_at: dict[str, float] = {}

    def poll(self) -> None:
        with self._path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            fields = parse_logfmt(line.decode(errors="replace"))
            if fields.get("event") == "file_committed" and "path" in fields:
                self.committed_at[fields["path"]] = parse_log_ts(fields.get("ts", ""))


def parse_logfmt(line: str) -> dict[str, str]:
    """Splits a key=value log line; values may be double-quoted with backslash escapes."""
    fields: dict[str, str] = {}
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        eq = line.find("=", i)
        if eq < 0:
            break
        key = line[i:eq]
        i = eq + 1
        if i < n and line[i] == '"':
            value, i = _quoted(line, i + 1)
        else:
            end = line.find(" ", i)
            end = n if end < 0 else end
            value, i = line[i:end], end
        fields[key] = value
    return fields


def _quoted(line: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    while i < len(line) and line[i] != '"':
        if line[i] == "\\" and i + 1 < len(line):
            i += 1
            out.append("\n" if line[i] == "n" else line[i])
        else:
            out.append(line[i])
        i += 1
    return "".join(out), i + 1


def parse_log_ts(text: str) -> float:
    """`2024-06-01T10:00:00.123Z` (photonic.logfmt) as Unix seconds; 0.0 when absent."""
    if not text:
        return 0.0
    moment = datetime.strptime(text.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
    return moment.replace(tzinfo=UTC).timestamp()


class PhotonicPeer:
    """A server and agents on loopback with their own PKI, storage and buffers in a temp dir."""

    name = "photonic"

    def __init__(
        self,
        work_dir: Path,
        *,
        agents: Sequence[str] = ("bench-agent",),
        certs: Path | None = None,
        limits: Mapping[str, object] | None = None,
        settings: Mapping[str, Mapping[str, object]] | None = None,
        argv: Sequence[str] | None = None,
    ) -> None:
        """certs: an existing PKI folder (ca, server and every agent's files) to use instead of
        making one with `photonic certs`; limits: the server config's `limits:` section;
        settings: more server.yaml keys by section (`catalog: {url: ...}`, `storage: {...}`),
        merged into the defaults (the scale-out figures' PostgreSQL and S3); argv: how to run
        the `photonic` CLI instead of this interpreter's (bench/baseline.py's older checkout)."""
        self._tmp = Path(tempfile.mkdtemp(prefix="photonic-", dir=work_dir))
        self._argv = list(argv) if argv is not None else photonic_argv()
        self._agents = tuple(agents)
        self._limits = dict(limits or {})
        self._settings = {section: dict(keys) for section, keys in (settings or {}).items()}
        if certs is None:
            self._certs = self._tmp / "certs"
            self._cli("certs", "init", "--dir", str(self._certs))
            for agent in self._agents:
                self._cli("certs", "issue", agent, "--dir", str(self._certs))
        else:
            self._certs = certs
        self.storage = self._tmp / "server"
        self._port = free_port()
        self._server: subprocess.Popen[bytes] | None = None
        self.log = ServerLog(self._tmp / "server.log")
        self._source: Path | None = None
        self._files = 0
        self._payload = 0

    def _cli(self, *args: str) -> None:
        subprocess.run([*self._argv, *args], check=True, capture_output=True, timeout=120)

    # --- configuration -------------------------------------------------------------------

    def _server_config(self) -> Path:
        config = {
            "server": {
                "bind_address": f"127.0.0.1:{self._port}",
                "storage_path": str(self.storage),
                "web_ui_port": free_port(),
                "web_ui_bind": "127.0.0.1",
            },
            "security": {
                "cert_path": str(self._certs / "server.crt"),
                "key_path": str(self._certs / "server.key"),
                "ca_path": str(self._certs / "ca.crt"),
            },
            "agents": {agent: {"scopes": ["sync"]} for agent in self._agents},
            "default_scopes": ["sync"],
        }
        if self._limits:
            config["limits"] = self._limits
        for section, keys in self._settings.items():
            defaults = config.get(section)
            config[section] = {**(defaults if isinstance(defaults, dict) else {}), **keys}
        path = self._tmp / "server.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def agent_config(
        self,
        agent: str,
        source: Path,
        *,
        metrics_port: int = 0,
        settle_delay_s: float | None = None,
        endpoints: Sequence[str] | None = None,
    ) -> Path:
        """Writes the agent's config: one reference-mode watch on source, defaults elsewhere
        (settle_delay_s: the agent's settle_delay instead of its default; endpoints: the
        agent's server_endpoints instead of this peer's server alone)."""
        agent_section: dict[str, object] = {}
        if settle_delay_s is not None:
            agent_section["settle_delay"] = f"{settle_delay_s:g}s"
        config = {
            "agent": {
                **agent_section,
                "id": agent,
                "server_endpoints": list(endpoints or [self.endpoint]),
                "buffer_path": str(self._tmp / f"buffer-{agent}"),
                "watch": [{"path": str(source), "name": _WATCH_NAME, "mode": "reference"}],
                "metrics_port": metrics_port,
            },
            "security": {
                "cert_path": str(self._certs / f"{agent}.crt"),
                "key_path": str(self._certs / f"{agent}.key"),
                "ca_path": str(self._certs / "ca.crt"),
            },
        }
        path = self._tmp / f"agent-{agent}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    # --- processes -----------------------------------------------------------------------

    def start_server(self) -> None:
        config = self._server_config()
        log = (self._tmp / "server.log").open("ab")
        self._server = subprocess.Popen(
            [*self._argv, "server", "--config", str(config)], stdout=log, stderr=log
        )
        wait_until(self._server_up, timeout_s=60, what="photonic server to listen")

    def _server_up(self) -> bool:
        assert self._server is not None
        if self._server.poll() is not None:
            raise RuntimeError(f"photonic server exited: {self.server_log_tail()}")
        return port_open(self._port)

    @property
    def server_log_path(self) -> Path:
        return self._tmp / "server.log"

    def server_log_tail(self, chars: int = 3000) -> str:
        return (self._tmp / "server.log").read_text(errors="replace")[-chars:]

    def server_usage(self) -> ProcUsage:
        assert self._server is not None
        return read_usage(self._server.pid)

    @property
    def server_pid(self) -> int:
        assert self._server is not None
        return self._server.pid

    @property
    def server_port(self) -> int:
        return self._port

    @property
    def certs(self) -> Path:
        return self._certs

    @property
    def endpoint(self) -> str:
        """host:port of this peer's server, as an agent's server_endpoints lists it."""
        return f"127.0.0.1:{self._port}"

    def run_once(self, agent: str, source: Path,
                 endpoints: Sequence[str] | None = None) -> OnceResult:
        """Runs `photonic agent --once` to completion and parses its JSON summary
        (endpoints: the agent's server_endpoints, by default this peer's server)."""
        config = self.agent_config(agent, source, endpoints=endpoints)
        argv = [*self._argv, "agent", "--config", str(config), "--once"]
        result = run_measured(argv, timeout_s=_TIMEOUT_S)
        if result.returncode != 0:
            raise RuntimeError(
                f"photonic agent --once exited {result.returncode}: {result.stderr[-3000:]}"
            )
        lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"photonic agent --once printed no JSON summary: {result.stdout!r}")
        return OnceResult(result, json.loads(lines[-1]))

    def start_agent(
        self, agent: str, source: Path, *, settle_delay_s: float | None = None
    ) -> subprocess.Popen[bytes]:
        """Starts an agent daemon (watching source); the caller stops it with stop_process."""
        config = self.agent_config(agent, source, settle_delay_s=settle_delay_s)
        log = (self._tmp / f"agent-{agent}.log").open("ab")
        return subprocess.Popen(
            [*self._argv, "agent", "--config", str(config)], stdout=log, stderr=log
        )

    # --- the SyncPeer scenarios ------------------------------------------------------------

    def _timed_once(self, files: int, payload: int, agent: str | None = None) -> SyncRun:
        assert self._source is not None
        before = self.server_usage()
        once = self.run_once(agent or self._agents[0], self._source)
        if once.files_done < files:
            raise RuntimeError(
                f"photonic synced {once.files_done} of {files} files: {once.summary}"
            )
        return SyncRun(
            seconds=once.command.wall_s,
            files=files,
            payload_bytes=payload,
            bytes_sent=once.bytes_sent,
            sender=once.command.usage,
            receiver=self.server_usage().minus(before),
        )

    def first_sync(self, source: Path, files: int, payload_bytes: int) -> SyncRun:
        if self._server is None:
            self.start_server()
        self._source, self._files, self._payload = source, files, payload_bytes
        return self._timed_once(files, payload_bytes)

    def cold_sync(self, source: Path, files: int, payload_bytes: int) -> SyncRun:
        """Server and `agent --once` both started inside the clock (the server first, the agent
        once it listens), photos in place; done when the agent exits, every photo durable.
        The receiver's CPU is the server's whole life so far, start-up included."""
        if self._server is not None:
            raise RuntimeError("a cold sync needs a peer whose server is not running yet")
        started = time.perf_counter()
        self.start_server()
        self._source, self._files, self._payload = source, files, payload_bytes
        once = self.run_once(self._agents[0], source)
        seconds = time.perf_counter() - started
        if once.files_done < files:
            raise RuntimeError(f"photonic synced {once.files_done} of {files}: {once.summary}")
        return SyncRun(
            seconds, files, payload_bytes, once.bytes_sent, once.command.usage,
            self.server_usage(),
        )

    def warm_sync(self, incoming: Path, files: int, payload_bytes: int, warmup: Path) -> SyncRun:
        """The server and an agent daemon watching an empty folder are up, and one warm-up photo
        went through them; then incoming is renamed into the folder and the clock runs until
        the server has logged `file_committed` (after the durable commit) for every photo."""
        watch = self._tmp / "watch"
        watch.mkdir()
        expected = set(relative_files(incoming, incoming.name))
        if self._server is None:
            self.start_server()
        agent = self.start_agent(self._agents[0], watch, settle_delay_s=WATCH_DELAY_S)
        try:
            self._wait_committed(agent, {place_warmup(warmup, watch)}, "the warm-up photo")
            before_agent, before_server = read_usage(agent.pid), self.server_usage()
            started = time.perf_counter()
            os.rename(incoming, watch / incoming.name)
            self._wait_committed(agent, expected, f"{len(expected)} photos")
            seconds = time.perf_counter() - started
            sender = read_usage(agent.pid).minus(before_agent)
            receiver = self.server_usage().minus(before_server)
        finally:
            stop_process(agent)
        return SyncRun(seconds, files, payload_bytes, None, sender, receiver)

    def _wait_committed(
        self, agent: subprocess.Popen[bytes], paths: set[str], what: str
    ) -> None:
        missing = set(paths)

        def all_committed() -> bool:
            if agent.poll() is not None:
                raise RuntimeError(f"photonic agent exited with {agent.returncode}")
            self.log.poll()
            missing.difference_update(self.log.committed_at.keys() & missing)
            return not missing

        wait_until(all_committed, timeout_s=_TIMEOUT_S, what=f"the server to commit {what}")

    def resync_unchanged(self) -> SyncRun:
        return self._timed_once(0, 0)

    def incremental(self, add_files: Callable[[], tuple[int, int]]) -> SyncRun:
        files, payload = add_files()
        return self._timed_once(files, payload)

    def second_agent(self, agent: str) -> SyncRun:
        """Another agent holding the same photos: everything should be answered HAVE."""
        return self._timed_once(self._files, self._payload, agent)

    def close(self) -> None:
        if self._server is not None:
            stop_process(self._server)
        trash.discard(self._tmp)


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 30) -> None:
    """SIGTERM (photonic drains and exits), SIGKILL if it is still there after the grace."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def measure_latency(
    peer: PhotonicPeer,
    agent: str,
    watch: Path,
    photos: Sequence[tuple[str, bytes]],
    *,
    timeout_s: float = 60,
    warmup: int = 1,
) -> tuple[list[float], ProcUsage]:
    """Writes photos one at a time into a watched folder; each latency runs from the file's
    close to the server's file_committed log line. Returns latencies and the agent's usage."""
    agent_proc = peer.start_agent(agent, watch)
    latencies: list[float] = []
    try:
        for index, (relative, data) in enumerate(photos):
            target = watch / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as handle:
                handle.write(data)
            closed_at = time.time()
            wait_until(
                functools.partial(_committed, peer, relative, agent_proc),
                timeout_s=timeout_s,
                interval_s=0.01,
                what=f"the server to commit {relative}",
            )
            # The first photo also waits for the agent to start and connect: not a latency.
            if index >= warmup:
                latencies.append(peer.log.committed_at[relative] - closed_at)
        usage = read_usage(agent_proc.pid)
    finally:
        stop_process(agent_proc)
    return latencies, usage


def _committed(peer: PhotonicPeer, relative: str, agent: subprocess.Popen[bytes]) -> bool:
    if agent.poll() is not None:
        raise RuntimeError(f"photonic agent exited with {agent.returncode}")
    peer.log.poll()
    return relative in peer.log.committed_at
