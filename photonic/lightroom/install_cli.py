"""`photonic lightroom install-plugin`: puts Photonic.lrplugin where Lightroom Classic looks
and tells it the bridge's address and secret."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from photonic.config import load_agent_config


def add_lightroom_parser(sub: Any) -> None:
    lightroom = sub.add_parser("lightroom", help="the Lightroom Classic plug-in")
    actions = lightroom.add_subparsers(dest="lightroom_action", required=True)
    install = actions.add_parser(
        "install-plugin", help="copy Photonic.lrplugin and write its bridge settings")
    install.add_argument("--config", type=Path, default=Path("agent.yaml"))
    install.add_argument("--dest", type=Path, default=None,
                         help="the folder to put Photonic.lrplugin in (default: Lightroom's "
                              "Modules folder on macOS and Windows; required elsewhere)")


def run_lightroom(args: argparse.Namespace) -> int:
    from photonic.lightroom.install import install_for_agent

    installed = install_for_agent(load_agent_config(args.config), args.dest)
    print(f"installed {installed.plugin_dir} ({len(installed.files)} files); "
          f"bridge {installed.bridge_url}")
    print("in Lightroom Classic: File > Plug-in Manager > Add, choose that folder, Enable")
    return 0
