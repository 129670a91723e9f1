"""`photonic server promote`: turns a stopped archive node into a primary for the library it
holds of one primary (the work is in promote.py; this checks, prints and advises)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from photonic._configobjects import require_local_objects
from photonic.errors import PhotonicError

if TYPE_CHECKING:  # the promotion's imports load only when it runs (cli builds the parser)
    from photonic.config import ServerConfig
    from photonic.server.promote import Plan

PROMOTE_DESCRIPTION = """\
Makes this archive node a primary for the library it holds of primary NAME (the certificate
name it replicated under): every path and version is given back the primary's own names
(<agent>/<watch>/<path>), library/NAME/<agent> becomes library/<agent>, and the agents are
registered. Run it with this server stopped. Re-running finishes a promotion a crash cut
short; once done, re-running changes nothing. Encrypted nodes cannot be promoted: restore
from them with the archive key instead."""


def add_promote_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`photonic server promote ...` (plain `photonic server` still runs the daemon)."""
    promote = sub.add_parser("promote", help="make this stopped archive node a primary",
                             description=PROMOTE_DESCRIPTION,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    promote.add_argument("--config", type=Path, default=Path("server.yaml"),
                         help="the archive server's YAML config (default: server.yaml)")
    promote.add_argument("--from-primary", dest="primary", required=True, metavar="NAME",
                         help="the primary's certificate name, as this node filed it "
                              "(library/NAME/)")
    promote.add_argument("--dry-run", action="store_true",
                         help="print what would change (counts per agent); change nothing")


def _listening(bind_address: str) -> str | None:
    """Where a server answers on the configured gRPC address, if one does; None if not."""
    host, _, port = bind_address.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return f"{host}:{port}"
    except OSError:
        return None


def _print_plan(plan: Plan, verb: str) -> None:
    for a in plan.agents:
        print(f"  {a.agent_id}: {a.paths} paths, {a.versions} versions, {a.head_bytes} bytes "
              f"at head; library/{plan.primary}/{a.agent_id} -> library/{a.agent_id}")
    print(f"{verb} {sum(a.paths for a in plan.agents)} paths of {len(plan.agents)} agents "
          f"from {plan.primary}")


def refuse_if_listening(config: ServerConfig, command: str) -> None:
    """An offline tool (promote, migrate) runs only with its server stopped: a server that
    answers on server.bind_address is a refusal; an unfixed port is a printed caution."""
    port = config.bind_address.rpartition(":")[2]
    if port == "0":
        print(f"note: server.bind_address {config.bind_address} has no fixed port, so "
              "whether the server is running cannot be checked: make sure it is stopped")
    elif (where := _listening(config.bind_address)) is not None:
        raise PhotonicError(f"a server is listening on {where} (server.bind_address): stop "
                            f"this server first; {command} must run with it stopped")
    else:
        print(f"checked: nothing listens on {config.bind_address} (the server is stopped)")


def run_promote(config: ServerConfig, primary: str, *, dry_run: bool) -> int:
    require_local_objects(config.config_path, config.objects, "server promote")
    from photonic.server import faults
    from photonic.server.promote import Promotion

    refuse_if_listening(config, "promote")
    catalog = config.catalog
    if catalog.backend != "sqlite":
        raise PhotonicError("promote works on an archive node's embedded catalog (catalog.url "
                            "sqlite:///..., the default): this server.yaml's catalog is on "
                            "PostgreSQL")
    promotion = Promotion(config.storage_path, catalog.sqlite_path)
    try:
        pending = promotion.pending_renames()
        if dry_run:
            for r in pending:
                print(f"  would finish an interrupted promotion: {r.source} -> {r.target}")
            plan = promotion.plan(primary)
            _print_plan(plan, "would promote")
            print("dry run: nothing changed")
            return 0
        finished = promotion.finish_renames()
        for r in finished:
            print(f"finished an interrupted promotion: {r.source} -> {r.target}")
        plan = promotion.plan(primary)
        if not plan.agents and not finished:
            print(f"nothing to promote: this server holds no library of {primary} "
                  "(already promoted?)")
            return 0
        if plan.agents:
            promotion.commit(plan)
            faults.hit("promote_after_commit")
            promotion.finish_renames()
            _print_plan(plan, "promoted")
    finally:
        promotion.close()
    print(f"Next: set server.role: primary in {config.config_path} (and give the agents "
          "their scopes there: agents/default_scopes), start the server, and point each "
          "agent's server_endpoints at this server "
          f"({config.bind_address}).")
    return 0
