"""rsync as a peer: daemon mode (plain), and over a private sshd with --fsync (our guarantees)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import trash
from bench.peers.base import SyncRun, free_port, port_open
from bench.procstat import ProcUsage, read_usage, run_measured, wait_until

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
        self._source: Path | None = None
        self._daemon: subprocess.Popen[bytes] | None = None
        self._files = 0
        self._payload = 0

    def _client_argv(self, source: Path) -> list[str]:
        raise NotImplementedError

    def _sync(self, files: int, payload_bytes: int) -> SyncRun:
        assert self._source is not None and self._daemon is not None
        before = read_usage(self._daemon.pid)
        result = run_measured(self._client_argv(self._source), timeout_s=_TIMEOUT_S)
        if result.returncode != 0:
            raise RuntimeError(f"{self.name} failed ({result.returncode}): {result.stderr[-2000:]}")
        receiver = _reaped_usage(self._daemon.pid, before)
        return SyncRun(
            seconds=result.wall_s,
            files=files,
            payload_bytes=payload_bytes,
            bytes_sent=_bytes_sent(result.stdout),
            sender=result.usage,
            receiver=receiver,
        )

    def first_sync(self, source: Path, files: int, payload_bytes: int) -> SyncRun:
        self._source, self._files, self._payload = source, files, payload_bytes
        return self._sync(files, payload_bytes)

    def resync_unchanged(self) -> SyncRun:
        return self._sync(0, 0)

    def incremental(self, add_files: Callable[[], tuple[int, int]]) -> SyncRun:
        files, payload = add_files()
        return self._sync(files, payload)

    def close(self) -> None:
        if self._daemon is not None and self._daemon.poll() is None:
            self._daemon.send_signal(signal.SIGTERM)
            try:
                self._daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._daemon.kill()
                self._daemon.wait(timeout=10)
        trash.discard(self._tmp)


class RsyncDaemonPeer(_RsyncPeer):
    """`rsync -a` to an rsync:// module on 127.0.0.1: no encryption, no fsync (the fast case)."""

    name = "rsync-daemon"

    def __init__(self, work_dir: Path) -> None:
        super().__init__(work_dir)
        self._port = free_port()
        conf = self._tmp / "rsyncd.conf"
        conf.write_text(
            f"port = {self._port}\naddress = 127.0.0.1\nuse chroot = no\n"
            f"pid file = {self._tmp}/rsyncd.pid\nlog file = {self._tmp}/rsyncd.log\n"
            f"[bench]\npath = {self.destination}\nread only = no\nuid = root\ngid = root\n"
        )
        self._daemon = subprocess.Popen(
            ["rsync", "--daemon", "--no-detach", f"--config={conf}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self._port), timeout_s=10, what="rsync daemon to listen")

    def _client_argv(self, source: Path) -> list[str]:
        return ["rsync", "-a", "--stats", f"{source}/", f"rsync://127.0.0.1:{self._port}/bench/"]


class RsyncSshPeer(_RsyncPeer):
    """rsync over ssh with --fsync, to a private sshd on loopback; the system sshd is untouched."""

    name = "rsync-ssh-fsync"

    def __init__(self, work_dir: Path) -> None:
        super().__init__(work_dir)
        self._port = free_port()
        self._key = self._tmp / "client_key"
        host_key = self._tmp / "host_key"
        for key in (self._key, host_key):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
            )
        (self._tmp / "authorized_keys").write_text(Path(f"{self._key}.pub").read_text())
        config = self._tmp / "sshd_config"
        config.write_text(
            f"Port {self._port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {self._tmp}/authorized_keys\nPidFile {self._tmp}/sshd.pid\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "StrictModes no\nPermitRootLogin prohibit-password\n"
        )
        # sshd refuses to start without its privilege-separation directory (made by systemd
        # on a normal boot); creating it is the only thing done outside the temp dir.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self._daemon = subprocess.Popen(
            [_SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(self._tmp / "sshd.log").open("wb"),
        )
        wait_until(lambda: port_open(self._port), timeout_s=10, what="private sshd to listen")

    def _client_argv(self, source: Path) -> list[str]:
        ssh = (
            f"ssh -p {self._port} -i {self._key} -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes"
        )
        return [
            "rsync",
            "-a",
            "--fsync",
            "--stats",
            "-e",
            ssh,
            f"{source}/",
            f"root@127.0.0.1:{self.destination}/",
        ]


def _reaped_usage(daemon_pid: int, before: ProcUsage) -> ProcUsage | None:
    """The receiving side's CPU: the daemon forks per connection, and once it has reaped that
    child the child's CPU shows up in the daemon's children time."""
    children = Path(f"/proc/{daemon_pid}/task/{daemon_pid}/children")
    try:
        wait_until(
            lambda: not children.read_text().strip(),
            timeout_s=10,
            what="the receiving side to exit",
        )
    except TimeoutError:
        return None
    after = read_usage(daemon_pid)
    # Peak RSS of a forked child is not visible from the daemon; only CPU is reported.
    return ProcUsage(after.cpu_s - before.cpu_s, 0)


def _bytes_sent(stats: str) -> int | None:
    match = _STATS_SENT.search(stats)
    if match is None:
        return None
    return int(re.sub(r"[,.]", "", match.group(1)))
