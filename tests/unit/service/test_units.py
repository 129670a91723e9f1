"""The service definitions: a systemd unit that systemd itself accepts, a plist that parses,
and install/uninstall that write where each service manager looks."""

from __future__ import annotations

import grp
import os
import plistlib
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from photonic.service.install import Platform, build_spec, install, render, uninstall
from photonic.service.units import ServiceSpec, launchd_plist, systemd_unit


def _spec(tmp_path: Path, *, role: str = "server", user_mode: bool = False) -> ServiceSpec:
    platform = Platform("systemd", tmp_path / "home", tmp_path / "root")
    return build_spec(role, tmp_path / "my conf" / f"{role}.yaml", [tmp_path / "storage 100%"],
                      user_mode=user_mode, platform=platform,
                      executable=["/opt/photonic/.venv/bin/photonic"])


def test_systemd_unit_is_notify_with_watchdog_restart_and_hardening(tmp_path: Path) -> None:
    """The unit waits for READY=1, has a watchdog, restarts on failure and may write only its
    storage; a path with a space or `%` is quoted and escaped."""
    unit = systemd_unit(_spec(tmp_path))
    lines = unit.splitlines()
    for line in ("Type=notify", "Restart=on-failure", "ProtectSystem=strict",
                 "NoNewPrivileges=yes", "WantedBy=multi-user.target"):
        assert line in lines
    assert any(line.startswith("WatchdogSec=") for line in lines)
    assert f'ReadWritePaths="{tmp_path}/storage 100%%"' in lines
    assert (f'ExecStart=/opt/photonic/.venv/bin/photonic server --config '
            f'"{tmp_path}/my conf/server.yaml"') in lines


def test_user_unit_is_wanted_by_default_target(tmp_path: Path) -> None:
    """A --user unit starts with the user's session manager."""
    assert "WantedBy=default.target" in systemd_unit(_spec(tmp_path, user_mode=True))


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing wrong with the rendered unit."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        reason = "systemd-analyze is not installed: the unit cannot be verified here"
        print(reason)
        pytest.skip(reason)
    exe = tmp_path / "bin" / "photonic"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    spec = build_spec("agent", tmp_path / "agent.yaml", [tmp_path / "buffer"], user_mode=False,
                      platform=Platform("systemd", tmp_path), executable=[str(exe)])
    unit = tmp_path / spec.unit_name
    unit.write_text(systemd_unit(spec))
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)
    problems = [line for line in proc.stderr.splitlines() if spec.unit_name in line]
    assert proc.returncode == 0 and not problems, proc.stderr


def test_launchd_plist_round_trips_through_plistlib(tmp_path: Path) -> None:
    """The plist parses, runs the daemon with its config, is kept alive after a crash (not
    after a clean exit) and logs to a file."""
    spec = _spec(tmp_path, role="agent", user_mode=True)
    job = plistlib.loads(launchd_plist(spec))
    assert job["Label"] == "io.photonic.agent"
    assert job["ProgramArguments"] == ["/opt/photonic/.venv/bin/photonic", "agent", "--config",
                                       f"{tmp_path}/my conf/agent.yaml"]
    assert job["KeepAlive"] == {"SuccessfulExit": False} and job["RunAtLoad"] is True
    assert job["StandardErrorPath"].endswith("photonic-agent.log")


@pytest.mark.parametrize(("kind", "user_mode", "where"), [
    ("systemd", True, "home/.config/systemd/user/photonic-server.service"),
    ("systemd", False, "root/etc/systemd/system/photonic-server.service"),
    ("launchd", True, "home/Library/LaunchAgents/io.photonic.server.plist"),
    ("launchd", False, "root/Library/LaunchDaemons/io.photonic.server.plist"),
])
def test_install_then_uninstall(tmp_path: Path, kind: str, user_mode: bool,
                                where: str) -> None:
    """install writes the rendered file where the service manager looks and names the
    command to run next; uninstall removes it (and systemd's enablement link)."""
    platform = Platform(kind, tmp_path / "home", tmp_path / "root")
    spec = build_spec("server", tmp_path / "server.yaml", [tmp_path / "s"],
                      user_mode=user_mode, platform=platform, executable=["/bin/photonic"])
    target, commands = install(spec, platform)
    assert target == tmp_path / where
    assert target.read_bytes() == render(spec, platform)[1]
    assert (tmp_path / "s").is_dir()  # systemd will not start a unit with a missing RW path
    assert commands and ("systemctl" in commands[-1] or "launchctl" in commands[-1])
    wants = target.parent / "multi-user.target.wants" / target.name
    if kind == "systemd":
        wants.parent.mkdir()
        wants.symlink_to(target)
    removed, _ = uninstall("server", user_mode, platform)
    assert removed == target and not target.exists() and not wants.is_symlink()
    assert uninstall("server", user_mode, platform) == (None, [])


def test_a_system_service_runs_as_the_owner_of_its_config(tmp_path: Path) -> None:
    """A system unit (and a LaunchDaemon) runs as the user and group owning the config, not
    as root, and the storage folder install makes for it is theirs; a config root owns
    keeps the service as root (no User= line)."""
    config = tmp_path / "server.yaml"
    config.write_text("server: {}\n")
    platform = Platform("systemd", tmp_path / "home", tmp_path / "root")
    root_owned = os.geteuid() == 0
    if root_owned:
        unit = systemd_unit(build_spec("server", config, [], user_mode=False,
                                       platform=platform, executable=["/bin/photonic"]))
        assert not any(line.startswith("User=") for line in unit.splitlines())
        os.chown(config, pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid)
    owner = pwd.getpwuid(config.stat().st_uid).pw_name
    group = grp.getgrgid(config.stat().st_gid).gr_name
    spec = build_spec("server", config, [tmp_path / "storage"], user_mode=False,
                      platform=platform, executable=["/bin/photonic"])
    lines = systemd_unit(spec).splitlines()
    assert f"User={owner}" in lines and f"Group={group}" in lines
    job = plistlib.loads(launchd_plist(spec))
    assert (job["UserName"], job["GroupName"]) == (owner, group)
    install(spec, platform)
    assert (tmp_path / "storage").stat().st_uid == config.stat().st_uid
    user_unit = systemd_unit(build_spec("server", config, [], user_mode=True,
                                        platform=platform, executable=["/bin/photonic"]))
    assert not any(line.startswith("User=") for line in user_unit.splitlines())
