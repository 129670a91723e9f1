"""The `photonic scrub` and `photonic restore` subcommands: their arguments and dispatch (the
work is in scrub_cli.py and restore_cli.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from photonic.config import load_server_config

SCRUB_DESCRIPTION = """\
Runs one full scrub pass now over the server's store (the same walk as `photonic verify`, at
storage.scrub_rate): re-hashes every stored photo, quarantines a damaged one (kept, never
served, never deleted), repairs it and every object left unrepaired before from the backup
nodes and storage.repair_from servers. Exits 0 when nothing is left damaged, 1 with the list
of photos no replica has. The server scrubs in the background on its own too
(storage.scrub_interval)."""

RESTORE_DESCRIPTION = """\
Pulls photos back from another server (an archive node) onto this one, a new or repaired
primary: each object is fetched, verified and stored, and linked at its library paths.
Re-running skips what is already here, so a cut restore resumes. NODE is the name of a
storage.backup_nodes or storage.repair_from entry, or host:port."""


def add_archive_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scrub = sub.add_parser("scrub", help="re-hash stored photos now and repair damaged ones "
                           "from a replica", description=SCRUB_DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _config(scrub)
    scrub.add_argument("--now", action="store_true", required=True,
                       help="run one full pass now (required: the background scrub is the "
                            "server's own)")
    scrub.add_argument("--json", action="store_true", help="print machine-readable JSON")
    restore = sub.add_parser("restore", help="pull photos back from an archive node",
                             description=RESTORE_DESCRIPTION,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    _config(restore)
    restore.add_argument("--from", dest="node", required=True, metavar="NODE",
                         help="the node to restore from (a configured name or host:port)")
    which = restore.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="everything the node holds of "
                       "this server's library")
    which.add_argument("--path", metavar="LIBRARY_PATH",
                       help="only photos under this library folder (<agent>/<watch>/<path>)")
    restore.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=Path("server.yaml"),
                   help="the server's YAML config (default: server.yaml in the current folder)")


def run_archive_command(args: argparse.Namespace) -> int:
    config = load_server_config(args.config)
    if args.command == "scrub":
        from photonic.server.scrub_cli import run_scrub_now

        return run_scrub_now(config, as_json=args.json)
    from photonic.server.restore_cli import run_restore

    return run_restore(config, args.node, library_path=args.path or "", as_json=args.json)
