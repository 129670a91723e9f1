"""`photonic web token create`: makes an admin token for the web API and dashboard."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from photonic.config import load_server_config


def add_web_parser(sub: Any) -> None:
    web = sub.add_parser("web", help="the server's web API and dashboard")
    what = web.add_subparsers(dest="web_command", required=True)
    token = what.add_parser("token", help="admin tokens for the web API")
    action = token.add_subparsers(dest="token_action", required=True)
    create = action.add_parser(
        "create", help="make a token (printed once, as the last line; stored hashed)")
    create.add_argument("--config", type=Path, default=Path("server.yaml"))
    create.add_argument("--name", default="admin",
                        help="shown in the audit log as web:NAME (default: admin)")


def run_web(args: argparse.Namespace) -> int:
    from photonic.server.storage.catalogs import open_catalog
    from photonic.web.credentials import create_token

    config = load_server_config(args.config)
    catalog = open_catalog(config.catalog)
    try:
        token = create_token(catalog, args.name)
    finally:
        catalog.close()
    print(f"made web token {args.name!r}; send it as 'Authorization: Bearer TOKEN' or log in "
          "with it; it is not shown again:")
    print(token)
    return 0
