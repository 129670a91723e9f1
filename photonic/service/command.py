"""The `photonic service` subcommands: argument parsing and the calls into install.py."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # install.py loads only when a service command runs (cli builds the parser)
    from photonic.service.install import Platform


def add_service_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    service = sub.add_parser(
        "service", help="install or remove the server or agent as a system service",
        description="Writes a systemd unit (Linux) or a launchd plist (macOS) that runs "
                    "`photonic server` or `photonic agent` with this config, restarts it on "
                    "failure and watches it (sd_notify). It prints the systemctl or "
                    "launchctl command to run next; it never runs them.")
    ssub = service.add_subparsers(dest="service_command", required=True)
    inst = ssub.add_parser("install", help="write the unit for the server or an agent",
                           description="Writes the unit file, or prints it with --print.")
    rm = ssub.add_parser("uninstall", help="remove the unit written by install",
                         description="Removes the unit file; stop the service first.")
    for p in (inst, rm):
        p.add_argument("role", choices=["server", "agent"], help="which daemon")
        p.add_argument("--user", action="store_true",
                       help="a per-user service (~/.config/systemd/user or "
                            "~/Library/LaunchAgents) instead of a system one")
    inst.add_argument("--config", type=Path, default=None,
                      help="the daemon's config file (default: server.yaml or agent.yaml "
                           "in the current folder)")
    inst.add_argument("--print", dest="print_only", action="store_true",
                      help="print the unit to stdout and write nothing")


def run_service(args: argparse.Namespace, platform: Platform | None = None) -> int:
    from photonic.service.install import Platform, build_spec, install, render, uninstall

    plat = platform or Platform.current()
    if args.service_command == "uninstall":
        removed, commands = uninstall(args.role, args.user, plat)
        if removed is None:
            print(f"no photonic {args.role} service is installed in "
                  f"{plat.unit_dir(args.user)}")
            return 0
        print(f"removed {removed}")
        _print_next(commands)
        return 0
    config_path = args.config or Path(f"{args.role}.yaml")
    spec = build_spec(args.role, config_path, _writable(args.role, config_path),
                      user_mode=args.user, platform=plat)
    if args.print_only:
        print(render(spec, plat)[1].decode(), end="")
        return 0
    target, commands = install(spec, plat)
    print(f"wrote {target}")
    _print_next(commands)
    return 0


def _writable(role: str, config_path: Path) -> list[Path]:
    """Where the daemon writes: the server's storage, the agent's buffer (ingest copies go
    there too); the watched folders are only read."""
    from photonic.config import load_agent_config, load_server_config

    if role == "server":
        return [load_server_config(config_path).storage_path]
    return [load_agent_config(config_path).buffer_path]


def _print_next(commands: list[str]) -> None:
    if commands:
        print("next, run:")
        for c in commands:
            print(f"  {c}")
