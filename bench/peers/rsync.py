"""rsync as a peer: daemon mode (plain), and over a private sshd with --fsync (our guarantees)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import trash
from bench.peers.base import SyncRun, free_port, place_warmup, port_open
from bench.procstat import ProcUsage, run_measured, tree_usage, wait_until

_SSHD = "/usr/sbin/sshd"
_TIMEOUT_S = 1800.0
_STATS_SENT = re.compile(r"Total bytes sent:\s*([\d,.]+)")


class _RsyncPeer:
    """Shared mechanics: a long-lived receiving daemon and an rsync client run per sync."""

    name = "rsync"

    def __init__(self, work_dir: Path) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=work_dir))
        self.destination = self._tmp / "dest"
        self.destination.mkdir()
        self._port = free_port()
        self._source: Path | None = None
        self._daemon: subprocess.Popen[bytes] | None = None
        self._files = 0
        self._payload = 0

    def _client_argv(self, source: Path) -> list[str]:
        raise NotImplementedError

    def _daemon_argv(self) -> list[str]:
        raise NotImplementedError

    def _launch(self) -> None:
        """Starts the receiving daemon and waits until it accepts connections."""
        self._daemon = subprocess.Popen(
            self._daemon_argv(),
            stdout=subprocess.DEVNULL,
            stderr=(self._tmp / "daemon.log").open("wb"),
        )
        wait_until(lambda: port_open(self._port), timeout_s=10, what=f"{self.name}'s daemon")

    def _sender_usage(self) -> ProcUsage:
        """CPU of the sending side's long-lived helpers (none but ssh's connection master)."""
        return ProcUsage(0.0, 0)

    def _session_open(self) -> bool:
        """Whether the receiving daemon keeps a child for a connection that stays open."""
        return False

    def _sync(self, files: int, payload_bytes: int, source: Path | None = None) -> SyncRun:
        source = source or self._source
        assert source is not None
        if self._daemon is None:
            self._launch()
        assert self._daemon is not None
        before, helpers_before = tree_usage(self._daemon.pid), self._sender_usage()
        result = run_measured(self._client_argv(source), timeout_s=_TIMEOUT_S)
        if result.returncode != 0:
            raise RuntimeError(f"{self.name} failed ({result.returncode}): {result.stderr[-2000:]}")
        sender = ProcUsage(
            result.usage.cpu_s + self._sender_usage().minus(helpers_before).cpu_s,
            result.usage.peak_rss_bytes,
        )
        return SyncRun(
            seconds=result.wall_s,
            files=files,
            payload_bytes=payload_bytes,
            bytes_sent=_bytes_sent(result.stdout),
            sender=sender,
            receiver=_receiver_usage(
                self._daemon.pid, before, 0.0 if self._session_open() else 2.0
            ),
        )

    def first_sync(self, source: Path, files: int, payload_bytes: int) -> SyncRun:
        self._source, self._files, self._payload = source, files, payload_bytes
        return self._sync(files, payload_bytes)

    def cold_sync(self, source: Path, files: int, payload_bytes: int) -> SyncRun:
        """The daemon (sshd or rsync --daemon) launched inside the clock, then the client."""
        if self._daemon is not None:
            raise RuntimeError("a cold sync needs a peer whose daemon is not running yet")
        started = time.perf_counter()
        self._launch()
        launch_s = time.perf_counter() - started
        run = self.first_sync(source, files, payload_bytes)
        seconds = launch_s + run.seconds  # the client's wall time; not the harness's reading
        assert self._daemon is not None
        receiver = _receiver_usage(self._daemon.pid, ProcUsage(0.0, 0), 2.0)
        return SyncRun(seconds, files, payload_bytes, run.bytes_sent, run.sender, receiver)

    def warm_sync(self, incoming: Path, files: int, payload_bytes: int, warmup: Path) -> SyncRun:
        """The daemon (and ssh's connection master) up, a warm-up photo sent through them;
        then incoming is renamed into the source folder and the client runs at once (rsync
        has no watcher: it pays no watch delay, which the others do)."""
        folder = self._tmp / "source"
        folder.mkdir()
        self._launch()
        self._warm_connection()
        place_warmup(warmup, folder)
        self._sync(1, warmup.stat().st_size, folder)
        os.rename(incoming, folder / incoming.name)
        return self._sync(files, payload_bytes, folder)

    def _warm_connection(self) -> None:
        """Opens whatever connection later clients reuse (ssh: a master); none by default."""

    def resync_unchanged(self) -> SyncRun:
        return self._sync(0, 0)

    def incremental(self, add_files: Callable[[], tuple[int, int]]) -> SyncRun:
        files, payload = add_files()
        return self._sync(files, payload)

    def close(self) -> None:
        for proc in self._processes():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        trash.discard(self._tmp)

    def _processes(self) -> list[subprocess.Popen[bytes]]:
        return [self._daemon] if self._daemon is not None else []


class RsyncDaemonPeer(_RsyncPeer):
    """`rsync -a` to an rsync:// module on 127.0.0.1: no encryption, no fsync (the fast case)."""

    name = "rsync-daemon"

    def __init__(self, work_dir: Path) -> None:
        super().__init__(work_dir)
        self._conf = self._tmp / "rsyncd.conf"
        self._conf.write_text(
            f"port = {self._port}\naddress = 127.0.0.1\nuse chroot = no\n"
            f"pid file = {self._tmp}/rsyncd.pid\nlog file = {self._tmp}/rsyncd.log\n"
            f"[bench]\npath = {self.destination}\nread only = no\nuid = root\ngid = root\n"
        )

    def _daemon_argv(self) -> list[str]:
        return ["rsync", "--daemon", "--no-detach", f"--config={self._conf}"]

    def _client_argv(self, source: Path) -> list[str]:
        return ["rsync", "-a", "--stats", f"{source}/", f"rsync://127.0.0.1:{self._port}/bench/"]


class RsyncSshPeer(_RsyncPeer):
    """rsync over ssh with --fsync, to a private sshd on loopback; the system sshd is untouched."""

    name = "rsync-ssh-fsync"

    def __init__(self, work_dir: Path) -> None:
        super().__init__(work_dir)
        self._key = self._tmp / "client_key"
        # A Unix socket's path must fit in 108 bytes: the run folder's may not.
        self._control_dir = Path(tempfile.mkdtemp(prefix="bench-ssh-"))
        self._control = self._control_dir / "master"
        self._master: subprocess.Popen[bytes] | None = None
        host_key = self._tmp / "host_key"
        for key in (self._key, host_key):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
            )
        (self._tmp / "authorized_keys").write_text(Path(f"{self._key}.pub").read_text())
        self._config = self._tmp / "sshd_config"
        self._config.write_text(
            f"Port {self._port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {self._tmp}/authorized_keys\nPidFile {self._tmp}/sshd.pid\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "StrictModes no\nPermitRootLogin prohibit-password\n"
        )
        # sshd refuses to start without its privilege-separation directory (made by systemd
        # on a normal boot); creating it is the only thing done outside the temp dir.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)

    def _daemon_argv(self) -> list[str]:
        return [_SSHD, "-D", "-e", "-f", str(self._config)]

    def _ssh_argv(self) -> list[str]:
        argv = [
            "ssh", "-p", str(self._port), "-i", str(self._key),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
        ]
        if self._master is not None:
            argv += ["-o", f"ControlPath={self._control}", "-o", "ControlMaster=no"]
        return argv

    def _warm_connection(self) -> None:
        """An ssh connection master (key exchange and authentication done once); every later
        rsync opens a session over it, as photonic's agent reuses its TLS connection."""
        argv = [*self._ssh_argv(), "-M", "-N", "-o", f"ControlPath={self._control}",
                "root@127.0.0.1"]
        self._master = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=(self._tmp / "master.log").open("wb")
        )
        wait_until(self._control.exists, timeout_s=30, what="ssh's connection master")

    def _sender_usage(self) -> ProcUsage:
        # The master encrypts and sends everything its sessions carry: the sender's work.
        return tree_usage(self._master.pid) if self._master is not None else ProcUsage(0.0, 0)

    def _session_open(self) -> bool:
        return self._master is not None

    def close(self) -> None:
        super().close()
        shutil.rmtree(self._control_dir, ignore_errors=True)

    def _processes(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in (self._master, self._daemon) if p is not None]

    def _client_argv(self, source: Path) -> list[str]:
        return [
            "rsync",
            "-a",
            "--fsync",
            "--stats",
            "-e",
            " ".join(self._ssh_argv()),
            f"{source}/",
            f"root@127.0.0.1:{self.destination}/",
        ]


def _receiver_usage(daemon_pid: int, before: ProcUsage, settle_s: float) -> ProcUsage:
    """The receiving side's CPU: the daemon and every process it forked (per connection, and
    the `rsync --server` below sshd's session), alive or reaped by one of them, since before.
    A per-connection child still exiting is given up to settle_s to be reaped first."""
    children = Path(f"/proc/{daemon_pid}/task/{daemon_pid}/children")
    if settle_s > 0:
        with contextlib.suppress(TimeoutError):  # still there: tree_usage reads it alive
            wait_until(lambda: not children.read_text().strip(), timeout_s=settle_s,
                       what="the receiving side to exit")
    after = tree_usage(daemon_pid)
    # Peak RSS of a forked child is not comparable across tools; only CPU is reported.
    return ProcUsage(after.cpu_s - before.cpu_s, 0)


def _bytes_sent(stats: str) -> int | None:
    match = _STATS_SENT.search(stats)
    if match is None:
        return None
    return int(re.sub(r"[,.]", "", match.group(1)))
