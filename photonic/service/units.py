"""The service definitions themselves: a systemd unit (Linux) and a launchd plist (macOS) that
run `photonic server` or `photonic agent` with a config, rendered from plain data."""

from __future__ import annotations

import plistlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

WATCHDOG_S = 30
"""systemd restarts a daemon whose event loop has not said WATCHDOG=1 for this long."""
STOP_TIMEOUT_S = 90
"""SIGTERM drains in-flight uploads and jobs (the agent's work grace is 10 s plus hand-back,
the server's stream drain 10 s); this is the service manager's patience before SIGKILL."""
LABEL_PREFIX = "io.photonic"


@dataclass(frozen=True)
class ServiceSpec:
    """What a unit runs: which daemon, with what, and where it may write."""

    role: str
    """"server" or "agent"."""
    executable: Sequence[str]
    """The command that is `photonic` (the venv's script, or python -m photonic.cli)."""
    config_path: Path
    writable_paths: Sequence[Path]
    """The storage (server) or the buffer and ingest folders (agent); all else is read-only."""
    user_mode: bool
    log_dir: Path
    """Where launchd writes the daemon's stdout and stderr."""
    run_as: tuple[str, str] | None = None
    """(user, group) a system service runs as: the owner of its config, who set it up and
    whose key files (0600) it reads. None: root (a config root owns), or a per-user service,
    which runs as its user anyway."""

    @property
    def argv(self) -> list[str]:
        return [*self.executable, self.role, "--config", str(self.config_path)]

    @property
    def unit_name(self) -> str:
        return f"photonic-{self.role}.service"

    @property
    def label(self) -> str:
        return f"{LABEL_PREFIX}.{self.role}"


def systemd_unit(spec: ServiceSpec) -> str:
    """A Type=notify unit: READY=1 and WATCHDOG=1 come from photonic.service.notify."""
    rw = " ".join(_systemd_quote(str(p)) for p in spec.writable_paths)
    lines = [
        "[Unit]",
        f"Description=photonic {spec.role}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        *([f"User={spec.run_as[0]}", f"Group={spec.run_as[1]}"] if spec.run_as else []),
        "ExecStart=" + " ".join(_systemd_quote(a) for a in spec.argv),
        "Restart=on-failure",
        "RestartSec=5s",
        f"WatchdogSec={WATCHDOG_S}s",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={STOP_TIMEOUT_S}s",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        *([f"ReadWritePaths={rw}"] if rw else []),
        "PrivateTmp=yes",
        "",
        "[Install]",
        f"WantedBy={'default.target' if spec.user_mode else 'multi-user.target'}",
        "",
    ]
    return "\n".join(lines)


def _systemd_quote(word: str) -> str:
    """One word of a unit's command or path list: `%` is a specifier, so doubled; a word with
    a space, quote or backslash is double-quoted with C escapes."""
    word = word.replace("%", "%%")
    if word and not any(c in word for c in ' \t"\'\\'):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def launchd_plist(spec: ServiceSpec) -> bytes:
    """A launchd job kept alive across crashes (not after a clean exit), logs to files."""
    job = {
        "Label": spec.label,
        "ProgramArguments": spec.argv,
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 5,
        "ExitTimeOut": STOP_TIMEOUT_S,
        "ProcessType": "Background",
        "StandardOutPath": str(spec.log_dir / f"photonic-{spec.role}.log"),
        "StandardErrorPath": str(spec.log_dir / f"photonic-{spec.role}.log"),
        "WorkingDirectory": str(spec.config_path.parent),
    }
    if spec.run_as is not None:
        job["UserName"], job["GroupName"] = spec.run_as
    return plistlib.dumps(job, sort_keys=False)
