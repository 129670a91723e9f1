"""`photonic service install|uninstall`: writes (or removes) the unit for this machine's service
manager and says what to run next; it never runs systemctl or launchctl itself."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from photonic.errors import InvalidInput
from photonic.service.units import ServiceSpec, launchd_plist, systemd_unit


@dataclass(frozen=True)
class Platform:
    """Where unit files go; injected so tests render macOS on Linux and write under tmp."""

    kind: str
    """"systemd" or "launchd"."""
    home: Path
    root: Path = Path("/")

    @classmethod
    def current(cls) -> Platform:
        return cls("launchd" if sys.platform == "darwin" else "systemd", Path.home())

    def unit_dir(self, user_mode: bool) -> Path:
        if self.kind == "launchd":
            return (self.home / "Library/LaunchAgents" if user_mode
                    else self.root / "Library/LaunchDaemons")
        return (self.home / ".config/systemd/user" if user_mode
                else self.root / "etc/systemd/system")

    def log_dir(self, user_mode: bool) -> Path:
        return self.home / "Library/Logs" if user_mode else self.root / "Library/Logs"


def photonic_executable() -> list[str]:
    """The `photonic` script beside this interpreter (the venv's), else python -m."""
    beside = Path(sys.executable).parent / "photonic"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside.absolute())]
    found = shutil.which("photonic")
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "photonic.cli"]


def build_spec(role: str, config_path: Path, writable: Sequence[Path], *, user_mode: bool,
               platform: Platform, executable: Sequence[str] | None = None) -> ServiceSpec:
    return ServiceSpec(role=role, executable=list(executable or photonic_executable()),
                       config_path=config_path.absolute(),
                       writable_paths=[p.absolute() for p in writable], user_mode=user_mode,
                       log_dir=platform.log_dir(user_mode),
                       run_as=None if user_mode else service_account(config_path))


def service_account(config_path: Path) -> tuple[str, str] | None:
    """The (user, group) owning the config: a system service runs as whoever set it up, not
    as root, unless root owns the config (or it does not exist yet)."""
    try:
        st = config_path.stat()
    except OSError:
        return None
    if st.st_uid == 0:
        return None
    try:
        return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name
    except KeyError:  # an owner with no name: systemd and launchd take names only
        return None


def render(spec: ServiceSpec, platform: Platform) -> tuple[str, bytes]:
    """(file name, contents) of the service definition for this platform."""
    if platform.kind == "launchd":
        return f"{spec.label}.plist", launchd_plist(spec)
    return spec.unit_name, systemd_unit(spec).encode()


def install(spec: ServiceSpec, platform: Platform) -> tuple[Path, list[str]]:
    """Writes the unit (replacing an older one) and makes its writable folders, since systemd
    refuses to start a unit whose ReadWritePaths= do not exist; returns the unit's path and
    the commands to run."""
    name, body = render(spec, platform)
    target = platform.unit_dir(spec.user_mode) / name
    try:
        for folder in spec.writable_paths:
            made = not folder.exists()
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if made and spec.run_as is not None and os.geteuid() == 0:
                # Made by root for a service that runs as the config's owner.
                shutil.chown(folder, *spec.run_as)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{name}.tmp")
        tmp.write_bytes(body)
        tmp.chmod(0o644)
        os.replace(tmp, target)
    except PermissionError:
        raise InvalidInput(f"cannot write {target} or make {list(map(str, spec.writable_paths))}"
                           ": run as root, or pass --user for a per-user service") from None
    return target, next_commands(spec, platform, target, installing=True)


def uninstall(role: str, user_mode: bool, platform: Platform) -> tuple[Path | None, list[str]]:
    """Removes the unit if there is one; returns its path (None if absent) and what to run
    first, so the service is stopped before its file goes."""
    spec = ServiceSpec(role, [], Path(), [], user_mode, platform.log_dir(user_mode))
    name = f"{spec.label}.plist" if platform.kind == "launchd" else spec.unit_name
    target = platform.unit_dir(user_mode) / name
    if not target.exists():
        return None, []
    commands = next_commands(spec, platform, target, installing=False)
    try:
        # What `systemctl disable` would remove: the enablement links to the file.
        for wants in target.parent.glob("*.wants"):
            if (wants / name).is_symlink():
                (wants / name).unlink()
        target.unlink()
    except PermissionError:
        raise InvalidInput(f"cannot remove {target}: run as root") from None
    return target, commands


def next_commands(spec: ServiceSpec, platform: Platform, target: Path, *,
                  installing: bool) -> list[str]:
    if platform.kind == "launchd":
        domain = f"gui/{os.getuid()}" if spec.user_mode else "system"
        sudo = "" if spec.user_mode else "sudo "
        if installing:
            return [f"{sudo}launchctl bootstrap {domain} {target}"]
        return [f"{sudo}launchctl bootout {domain}/{spec.label}"]
    ctl = "systemctl --user" if spec.user_mode else "sudo systemctl"
    if installing:
        return [f"{ctl} daemon-reload", f"{ctl} enable --now {spec.unit_name}"]
    return [f"{ctl} stop {spec.unit_name}", f"{ctl} daemon-reload"]
