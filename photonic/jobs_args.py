"""The `photonic jobs` command line: its subcommands and options, kept apart from jobs_cli
(which needs grpc, protobuf and rich) so that building `photonic`'s parser, which every
command does, costs none of those imports."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from photonic.jobs_model import JobState


def add_jobs_parser(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="submit, follow and download processing jobs "
                                       "(admin scope)")
    conn = _connection_parser()
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true",
                         help="print the Job message as canonical protobuf JSON")
    jsub = jobs.add_subparsers(dest="jobs_command", required=True)
    _add_submit(jsub.add_parser("submit", parents=[conn, as_json],
                                help="submit a job or batch"))
    status = jsub.add_parser("status", parents=[conn, as_json], help="one job, or a batch "
                                                                     "and its children")
    status.add_argument("job_id", metavar="ID")
    listing = jsub.add_parser("list", parents=[conn, as_json], help="recent jobs")
    listing.add_argument("--state", type=_state_arg,
                         help="only jobs in this state (pending, completed, failed, ...)")
    listing.add_argument("--type", dest="kind", default="", help="only jobs of this type")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--children", action="store_true",
                         help="also list the jobs inside batches")
    cancel = jsub.add_parser("cancel", parents=[conn, as_json], help="cancel a job or batch")
    cancel.add_argument("job_id", metavar="ID")
    download = jsub.add_parser("download", parents=[conn], help="save a job's outputs "
                                                                 "(a batch's: all of them)")
    download.add_argument("job_id", metavar="ID")
    download.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    watch = jsub.add_parser("watch", parents=[conn], help="live progress until it ends "
                                                           "(without ID: every active job)")
    watch.add_argument("job_id", metavar="ID", nargs="?")


def _connection_parser() -> argparse.ArgumentParser:
    """The options every subcommand takes to reach a server as an admin."""
    conn = argparse.ArgumentParser(add_help=False)
    where = conn.add_argument_group("server and certificate")
    where.add_argument("--config", type=Path, default=None,
                       help="an agent.yaml whose certificate has the admin scope (default "
                            "agent.yaml); its first reachable server_endpoints is used")
    where.add_argument("--server", metavar="HOST:PORT", help="instead of --config")
    where.add_argument("--cert", type=Path, help="with --server: client certificate")
    where.add_argument("--key", type=Path, help="with --server: its private key")
    where.add_argument("--ca", type=Path, help="with --server: the CA certificate")
    return conn


def _add_submit(submit: argparse.ArgumentParser) -> None:
    submit.add_argument("kind", metavar="TYPE", help="the job type, e.g. bgremove, facecrop")
    given = submit.add_mutually_exclusive_group(required=True)
    given.add_argument("--photo", action="append", metavar="SHA256",
                       help="a stored photo by hash (repeat for a batch)")
    given.add_argument("--path", action="append", metavar="LIBRARY_PATH",
                       help="a stored photo by library path agent/watch/path (repeatable)")
    given.add_argument("--folder", metavar="LIBRARY_FOLDER",
                       help="every photo beneath a library folder")
    given.add_argument("--shoot", metavar="LIBRARY_PATH",
                       help="every photo of the shoot this photo belongs to")
    given.add_argument("--zip", type=Path, metavar="FILE.zip",
                       help="upload a ZIP of images; one job per image")
    submit.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a job parameter; VALUE is JSON if it parses (0.5, true), "
                             "else a string")
    submit.add_argument("--require", action="append", default=[], metavar="TAG",
                        help="a capability the worker must have (gpu, os=macos)")
    submit.add_argument("--priority", type=int, default=0, help="higher runs first")
    submit.add_argument("--wait", action="store_true",
                        help="wait until it ends; exit 1 if it (or any child) failed")


def _state_arg(text: str) -> JobState:
    from photonic.jobs_model import JobState

    try:
        return JobState(text.strip().upper().removeprefix("JOB_STATE_"))
    except ValueError:
        known = ", ".join(s.value.lower() for s in JobState)
        raise argparse.ArgumentTypeError(f"{text!r} is not a job state ({known})") from None
