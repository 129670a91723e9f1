"""The `photonic` command: parses arguments, loads config, and hands over to an app."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from photonic import __version__
from photonic.config import load_agent_config, load_server_config
from photonic.errors import ConfigError, PhotonicError
from photonic.logfmt import LOG_FORMAT_ENV, LOG_FORMATS, configure_logging

if TYPE_CHECKING:  # asyncio loads only for the commands that run a loop
    import asyncio

    from photonic.server.grpc_log_tap import StderrTap

    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_USAGE = 2
EXIT_FAILURE = 1


DESCRIPTION = """\
photonic keeps photo folders on your machines in one library on a server, over mutual TLS,
and runs processing jobs on agents. Run `photonic server` on the machine that keeps the
library and `photonic agent` on each machine with photos; each reads a YAML config
(server.yaml, agent.yaml). `photonic COMMAND --help` explains each command."""

CONFIG_HELP = {
    "server": "the server's YAML config (default: server.yaml in the current folder)",
    "agent": "the agent's YAML config (default: agent.yaml in the current folder)",
}
JSON_HELP = "print machine-readable JSON instead of text"


def _command(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
             summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand with a one-line summary for the parent's list and its own description."""
    return sub.add_parser(name, help=summary, description=description)


def _config_arg(p: argparse.ArgumentParser, role: str, help_text: str | None = None) -> None:
    p.add_argument("--config", type=Path, default=Path(f"{role}.yaml"),
                   help=help_text or CONFIG_HELP[role])


def _parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """photonic's parser; given the argv it will parse, only as much of it as that needs.

    A command in ALONE gets its own subparser alone: building all ~35 is ~6 ms of argparse
    and imports, a twentieth of an idle `agent --once` (issue 16). Parsing a command's
    arguments never reads the other subparsers, and the top-level usage names COMMAND, not
    the list, so what is parsed and every message is the same (tests/unit/test_cli_parser.py).
    """
    p = argparse.ArgumentParser(prog="photonic", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"photonic {__version__}")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="the least severe log lines the daemons write (default: info)")
    p.add_argument("--log-format", default="logfmt", choices=list(LOG_FORMATS),
                   help="log lines as key=value (logfmt, the default) or as one JSON object "
                        "per line (json); the fields are the same")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    alone = ALONE.get(_command_of(argv) or "") if argv is not None else None
    if alone is not None:
        alone(sub)
        return p
    _certs_parser(sub)
    _server_parser(sub)
    _agent_parser(sub)
    _status_parser(sub)
    _conflicts_parser(sub)
    verify = _command(sub, "verify", "re-hash the server's stored photos, quarantine damaged "
                      "ones, report", "Reads every stored photo (or those stored since DATE), "
                      "checks its hash, moves a damaged one to quarantine and reports.")
    _config_arg(verify, "server")
    which = verify.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every stored photo (the default)")
    which.add_argument("--since", type=_date_arg, metavar="DATE",
                       help="only photos stored on or after DATE (YYYY-MM-DD, UTC)")
    verify.add_argument("--rate", default="100MB/s",
                        help="read at most this fast, so the server keeps its disk "
                             "(default 100MB/s; 0 = no limit)")
    verify.add_argument("--json", action="store_true", help=JSON_HELP)
    _audit_parser(sub)

    from photonic.agent.executors.models_cli import add_models_parser
    from photonic.jobs_args import add_jobs_parser
    from photonic.lightroom.install_cli import add_lightroom_parser
    from photonic.service.command import add_service_parser
    from photonic.web.cli import add_web_parser

    add_jobs_parser(sub)
    add_models_parser(sub)
    add_lightroom_parser(sub)
    add_web_parser(sub)
    add_service_parser(sub)
    from photonic.server.archive_commands import add_archive_parsers

    add_archive_parsers(sub)
    return p


def _certs_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    certs = _command(sub, "certs", "make the CA, server and agent certificates",
                     "Makes the private CA, the server's certificate and one certificate per "
                     "agent (its common name is the agent's id, agent.id in agent.yaml).")
    csub = certs.add_subparsers(dest="certs_command", required=True, metavar="ACTION")
    dir_help = "the folder that holds the CA and the certificates (default: ./certs)"
    init = _command(csub, "init", "make a CA and a server certificate",
                    "Makes ca.crt/ca.key and server.crt/server.key in --dir.")
    init.add_argument("--dir", type=Path, default=Path("certs"), help=dir_help)
    init.add_argument("--san", action="append", default=[],
                      help="an extra host name or IP for the server certificate")
    init.add_argument("--force", action="store_true", help="replace existing files")
    issue = _command(csub, "issue", "make an agent certificate (CN = AGENT_ID)",
                     "Makes AGENT_ID.crt/AGENT_ID.key signed by the CA in --dir.")
    issue.add_argument("agent_id", metavar="AGENT_ID",
                       help="the agent's id, as agent.id in its agent.yaml")
    issue.add_argument("--dir", type=Path, default=Path("certs"), help=dir_help)
    issue.add_argument("--force", action="store_true", help="replace existing files")
    issue.add_argument("--role", choices=["agent", "server"], default="agent",
                       help="server: a certificate a server serves with and dials archive "
                            "nodes with (serverAuth + clientAuth, CN = the name archive "
                            "nodes list with the replicate scope)")
    issue.add_argument("--san", action="append", default=[],
                       help="with --role server: an extra host name or IP it serves as")
    archive_key = _command(
        csub, "archive-key", "make the key that encrypts copies on encrypted backup nodes",
        "Writes a new random 32-byte key to archive.key in --dir (0600), where the server "
        "looks for it (security.archive_key_path). It never leaves this machine: BACK IT UP "
        "somewhere safe, since without it the copies on encrypted backup nodes cannot be "
        "read. An existing key is never replaced.")
    archive_key.add_argument("--dir", type=Path, default=Path("certs"), help=dir_help)


def _command_of(argv: Sequence[str]) -> str | None:
    """The command argv names, when nothing before it but the top-level options that take a
    value (with their values); None for anything else (-h, --version, an abbreviated option,
    no command), which the whole parser handles."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _VALUED_TOP_OPTIONS and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            i += 2
        elif arg.partition("=")[0] in _VALUED_TOP_OPTIONS and "=" in arg:
            i += 1
        else:
            return None if arg.startswith("-") else arg
    return None


_VALUED_TOP_OPTIONS = ("--log-level", "--log-format")


def _server_parser(sub: SubParsers) -> None:
    server = _command(sub, "server", "run the server daemon",
                      "Serves the library to agents until SIGTERM or Ctrl-C, then drains "
                      "in-flight uploads and exits.")
    _config_arg(server, "server")
    from photonic.server.migrate.cli import add_migrate_parser
    from photonic.server.promote_cli import add_promote_parser

    actions = server.add_subparsers(dest="server_command", metavar="ACTION")
    add_promote_parser(actions)
    add_migrate_parser(actions)


def _agent_parser(sub: SubParsers) -> None:
    agent = _command(sub, "agent", "run the agent daemon",
                     "Watches the configured folders and syncs them to the server (and runs "
                     "jobs when work is enabled) until SIGTERM or Ctrl-C, then drains.")
    _config_arg(agent, "agent")
    agent.add_argument("--once", action="store_true",
                       help="scan, sync everything queued, print a JSON summary and exit")


def _status_parser(sub: SubParsers) -> None:
    status = _command(sub, "status", "the agent's state, queue and progress",
                      "Reads the agent's state database and live status file, so it works "
                      "whether or not the agent is running.")
    _config_arg(status, "agent")
    status.add_argument("--json", action="store_true", help=JSON_HELP)
    status.add_argument("--watch", action="store_true", help="live progress view")
    status.add_argument("--remote", action="store_true",
                        help="also ask the server (photos stored, open conflicts)")


def _conflicts_parser(sub: SubParsers) -> None:
    conflicts = _command(sub, "conflicts", "list or resolve conflicts (admin scope)",
                         "Lists the server's open conflicts, or settles them by keeping the "
                         "incoming or the server's version. Needs a certificate with the "
                         "admin scope (server.yaml, agents:).")
    _config_arg(conflicts, "agent", "an agent config whose certificate has the admin scope "
                                    "(default: agent.yaml)")
    conflicts.add_argument("action", choices=["list", "keep-incoming", "keep-server"])
    conflicts.add_argument("ids", nargs="*", type=int, help="the conflicts to settle")
    conflicts.add_argument("--all", action="store_true",
                           help="settle every open conflict instead of the listed IDS")


ALONE: dict[str, Callable[[SubParsers], None]] = {
    "server": _server_parser, "agent": _agent_parser, "status": _status_parser,
    "conflicts": _conflicts_parser,
}
"""The commands whose subparser is built alone when argv names them (see _parser): the
daemons and the agent's own tools, whose start is what users wait for."""


def _audit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = _command(sub, "audit", "read the server's audit trail",
                     "Who (by certificate identity) did what, read from the server's "
                     "catalog; works while the server runs.")
    asub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    tail = _command(asub, "tail", "print the newest audit rows",
                    "Prints the newest rows (time, actor, action, target, result, detail), "
                    "oldest first, as escaped key=value lines or JSON lines.")
    _config_arg(tail, "server")
    tail.add_argument("-n", "--lines", type=int, default=20, metavar="N",
                      help="how many of the newest rows to print first (default 20)")
    tail.add_argument("--follow", "-f", action="store_true",
                      help="keep printing new rows as they are written, until Ctrl-C")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")


def _date_arg(text: str) -> dt.datetime:
    try:
        day = dt.datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-12-31") from None
    return day.replace(tzinfo=dt.UTC)


def run() -> NoReturn:
    """The console script: `main`, then an exit that skips the interpreter's teardown."""
    exit_now(main())


def exit_now(code: int) -> NoReturn:
    """Ends the process as soon as everything that must run at exit has run.

    After a clean shutdown the interpreter's teardown only frees memory, and with grpc,
    protobuf and cryptography loaded that takes ~85 ms: a third of a no-change `agent
    --once`. Nothing durable waits on it: databases are closed and committed by then, and
    the daemons are built to survive kill -9 at any instant (the chaos suite proves it).
    atexit handlers (logging's flush, grpc's shutdown) still run and stdio is flushed. When
    a non-daemon thread is still running, the exit is the ordinary one, which waits for it.
    """
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive()
           for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser(sys.argv[1:] if argv is None else argv).parse_args(argv)
    os.environ[LOG_FORMAT_ENV] = args.log_format  # also for the processes the daemons start
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"photonic: configuration is not valid ({len(exc.problems)} problem"
              f"{'s' if len(exc.problems) != 1 else ''}):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    except PhotonicError as exc:
        print(f"photonic: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "certs":
        return _certs(args)
    if args.command == "server":
        return _server(args)
    if args.command == "agent":
        return _agent(args)
    if args.command == "status":
        from photonic.agent.status_view import run_status

        return run_status(load_agent_config(args.config), as_json=args.json, watch=args.watch,
                          remote=args.remote)
    if args.command == "conflicts":
        from photonic.agent.status_view import run_conflicts

        return run_conflicts(load_agent_config(args.config), args.action, args.ids, args.all)
    if args.command == "verify":
        from photonic.server.verify_cli import run_verify

        return run_verify(load_server_config(args.config), since=args.since,
                          rate=args.rate, as_json=args.json)
    if args.command == "jobs":
        from photonic.jobs_cli import run_jobs

        return run_jobs(args)
    if args.command == "models":
        from photonic.agent.executors.models_cli import run_models

        return run_models(args)
    if args.command == "lightroom":
        from photonic.lightroom.install_cli import run_lightroom

        return run_lightroom(args)
    if args.command == "web":
        from photonic.web.cli import run_web

        return run_web(args)
    if args.command == "service":
        from photonic.service.command import run_service

        return run_service(args)
    if args.command in ("scrub", "restore"):
        from photonic.server.archive_commands import run_archive_command

        return run_archive_command(args)
    if args.command == "audit":
        from photonic.server.audit_cli import run_audit_tail

        return run_audit_tail(load_server_config(args.config), count=args.lines,
                              follow=args.follow, as_json=args.json)
    raise AssertionError(args.command)


def _certs(args: argparse.Namespace) -> int:
    from photonic import pki

    if args.certs_command == "init":
        paths = pki.init_pki(args.dir, args.san, force=args.force)
        for path in (paths.ca_cert, paths.ca_key, paths.server_cert, paths.server_key):
            print(f"wrote {path}")
        return 0
    if args.certs_command == "archive-key":
        from photonic.archive_key import DEFAULT_FILE_NAME, new_key_file

        made = new_key_file(args.dir / DEFAULT_FILE_NAME)
        print(f"wrote {args.dir / DEFAULT_FILE_NAME} (fingerprint {made.fingerprint})\n"
              "Back this file up now, away from this machine: without it the copies on "
              "encrypted backup nodes cannot be read.")
        return 0
    if args.san and args.role != "server":
        print("photonic: error: --san goes with --role server", file=sys.stderr)
        return 2
    crt, key = pki.issue_agent_cert(args.dir, args.agent_id, force=args.force,
                                    server_role=args.role == "server", sans=args.san)
    print(f"wrote {crt}\nwrote {key}")
    return 0


def _stderr_tap() -> StderrTap:
    """Routes what the server's libraries write to stderr (gRPC core logs a peer's TLS server
    name as it came) through the tap that escapes it; photonic's own records bypass it."""
    from photonic.server.grpc_log_tap import StderrTap

    return StderrTap.install("server")


def _preflight_tls(cert: Path, key: Path, ca: Path, memo_dir: Path | None = None,
                   agent_id: str | None = None) -> None:
    """Refuses to start on broken TLS files with a sentence, not a gRPC stack trace. With
    memo_dir, files that passed unchanged before are not checked again (photonic.tls_memo).
    agent_id names the certificate a hint tells the user to issue (not the file's stem)."""
    from photonic import tls
    from photonic.tls_memo import TlsMemo

    memo = TlsMemo(memo_dir, (cert, key, ca)) if memo_dir is not None else None
    if memo is not None and memo.passed(tls.utc_now()):
        return
    problems = tls.certificate_problems(cert, key, ca, agent_id=agent_id)
    for p in problems:
        print(f"photonic: {p}", file=sys.stderr)
    if tls.problems_fatal(problems):
        raise PhotonicError("cannot start: fix the TLS files above")
    if memo is not None and not problems:
        memo.remember(*tls.validity_window(cert, ca))


def _server(args: argparse.Namespace) -> int:
    config = load_server_config(args.config)
    if getattr(args, "server_command", None) == "promote":
        from photonic.server.promote_cli import run_promote

        return run_promote(config, args.primary, dry_run=args.dry_run)
    if getattr(args, "server_command", None) == "migrate":
        from photonic.server.migrate.cli import run_migrate

        return run_migrate(config, args.to_url, args.objects_url,
                           endpoint_url=args.s3_endpoint_url, region=args.s3_region,
                           reread=args.reread)
    _preflight_tls(config.security.cert_path, config.security.key_path,
                   config.security.ca_path)
    tap = _stderr_tap()
    try:
        configure_logging(args.log_level, stream=tap.log_stream, component="server")
        from photonic.server.app import ServerApp

        async def serve(stop: asyncio.Event, ready: Callable[[], object]) -> None:
            app = ServerApp(config)
            await app.start()
            try:
                ready()
                await stop.wait()
            finally:
                await app.stop()

        return _run_daemon(serve)
    finally:
        tap.close()


def _agent(args: argparse.Namespace) -> int:
    config = load_agent_config(args.config)
    sec = config.security
    _preflight_tls(sec.cert_path, sec.key_path, sec.ca_path, memo_dir=config.buffer_path,
                   agent_id=config.agent_id)
    configure_logging(args.log_level, component="agent", agent=config.agent_id)
    from photonic.agent.app import AgentApp

    summary: list[dict[str, object]] = []

    async def run(stop: asyncio.Event, ready: Callable[[], object]) -> None:
        result = await AgentApp(config).run(stop, once=args.once, on_started=ready)
        summary.append(result.as_json())

    code = _run_daemon(run)
    if args.once and summary:
        print(json.dumps(summary[0]))
    return code


Daemon = Callable[["asyncio.Event", Callable[[], object]], Coroutine[Any, Any, None]]
"""A daemon's body: runs until its stop event is set, calling ready() once it serves."""


def _run_daemon(make: Daemon) -> int:
    """Runs a daemon until SIGTERM or SIGINT, which set its stop event for a graceful drain.
    Under systemd (NOTIFY_SOCKET) it reports READY=1 when the daemon calls ready(),
    WATCHDOG=1 while its event loop runs, and STOPPING=1 when the drain begins."""
    import asyncio

    from photonic import taskdump
    from photonic.memtune import keep_freed_buffers
    from photonic.service.notify import Notifier

    keep_freed_buffers()
    notifier = Notifier.from_env()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stop_requested() -> None:
            if not stop.is_set():
                notifier.stopping()
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_requested)
        taskdump.install(loop)  # kill -USR2: what a stuck daemon waits on, in its log
        watchdog_done = asyncio.Event()
        watchdog = asyncio.create_task(notifier.watchdog(watchdog_done))
        try:
            await make(stop, notifier.ready)
        finally:
            if not stop.is_set():
                notifier.stopping()  # the daemon ended on its own (--once, a crash)
            watchdog_done.set()
            await watchdog

    asyncio.run(main())
    return 0

if __name__ == "__main__":
    run()
