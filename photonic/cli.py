"""The `photonic` command: parses arguments, loads config, and hands over to an app."""

from __future__ import annotations

import argparse
import asyncio
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
from photonic.logfmt import configure_logging

if TYPE_CHECKING:
    from photonic.server.grpc_log_tap import StderrTap

EXIT_USAGE = 2
EXIT_FAILURE = 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="photonic", description=__doc__)
    p.add_argument("--version", action="version", version=f"photonic {__version__}")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = p.add_subparsers(dest="command", required=True)

    certs = sub.add_parser("certs", help="make the CA, server and agent certificates")
    csub = certs.add_subparsers(dest="certs_command", required=True)
    init = csub.add_parser("init", help="make a CA and a server certificate")
    init.add_argument("--dir", type=Path, default=Path("certs"))
    init.add_argument("--san", action="append", default=[],
                      help="an extra host name or IP for the server certificate")
    init.add_argument("--force", action="store_true", help="replace existing files")
    issue = csub.add_parser("issue", help="make an agent certificate (CN = AGENT_ID)")
    issue.add_argument("agent_id")
    issue.add_argument("--dir", type=Path, default=Path("certs"))
    issue.add_argument("--force", action="store_true", help="replace existing files")

    server = sub.add_parser("server", help="run the server daemon")
    server.add_argument("--config", type=Path, default=Path("server.yaml"))

    agent = sub.add_parser("agent", help="run the agent daemon")
    agent.add_argument("--config", type=Path, default=Path("agent.yaml"))
    agent.add_argument("--once", action="store_true",
                       help="scan, sync everything queued, print a JSON summary and exit")

    status = sub.add_parser("status", help="the agent's state, queue and progress")
    status.add_argument("--config", type=Path, default=Path("agent.yaml"))
    status.add_argument("--json", action="store_true")
    status.add_argument("--watch", action="store_true", help="live progress view")
    status.add_argument("--remote", action="store_true",
                        help="also ask the server (photos stored, open conflicts)")

    conflicts = sub.add_parser("conflicts", help="list or resolve conflicts (admin scope)")
    conflicts.add_argument("--config", type=Path, default=Path("agent.yaml"),
                           help="an agent config whose certificate has the admin scope")
    conflicts.add_argument("action", choices=["list", "keep-incoming", "keep-server"])
    conflicts.add_argument("ids", nargs="*", type=int)
    conflicts.add_argument("--all", action="store_true")
    verify = sub.add_parser(
        "verify", help="re-hash the server's stored photos, quarantine damaged ones, report")
    verify.add_argument("--config", type=Path, default=Path("server.yaml"))
    which = verify.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every stored photo (the default)")
    which.add_argument("--since", type=_date_arg, metavar="DATE",
                       help="only photos stored on or after DATE (YYYY-MM-DD, UTC)")
    verify.add_argument("--rate", default="100MB/s",
                        help="read at most this fast, so the server keeps its disk "
                             "(default 100MB/s; 0 = no limit)")
    verify.add_argument("--json", action="store_true")

    from photonic.agent.executors.models_cli import add_models_parser
    from photonic.jobs_cli import add_jobs_parser
    from photonic.lightroom.install_cli import add_lightroom_parser
    from photonic.web.cli import add_web_parser

    add_jobs_parser(sub)
    add_models_parser(sub)
    add_lightroom_parser(sub)
    add_web_parser(sub)
    return p


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
    args = _parser().parse_args(argv)
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
        config = load_server_config(args.config)
        _preflight_tls(config.security.cert_path, config.security.key_path,
                       config.security.ca_path)
        tap = _stderr_tap()
        try:
            configure_logging(args.log_level, stream=tap.log_stream, component="server")
            from photonic.server.app import run_server

            return _run_daemon(lambda stop: run_server(config, stop))
        finally:
            tap.close()
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
    raise AssertionError(args.command)


def _certs(args: argparse.Namespace) -> int:
    from photonic import pki

    if args.certs_command == "init":
        paths = pki.init_pki(args.dir, args.san, force=args.force)
        for path in (paths.ca_cert, paths.ca_key, paths.server_cert, paths.server_key):
            print(f"wrote {path}")
        return 0
    crt, key = pki.issue_agent_cert(args.dir, args.agent_id, force=args.force)
    print(f"wrote {crt}\nwrote {key}")
    return 0


def _stderr_tap() -> StderrTap:
    """Routes what the server's libraries write to stderr (gRPC core logs a peer's TLS server
    name as it came) through the tap that escapes it; photonic's own records bypass it."""
    from photonic.server.grpc_log_tap import StderrTap

    return StderrTap.install("server")


def _preflight_tls(cert: Path, key: Path, ca: Path, memo_dir: Path | None = None) -> None:
    """Refuses to start on broken TLS files with a sentence, not a gRPC stack trace. With
    memo_dir, files that passed unchanged before are not checked again (photonic.tls_memo)."""
    from photonic import tls
    from photonic.tls_memo import TlsMemo

    memo = TlsMemo(memo_dir, (cert, key, ca)) if memo_dir is not None else None
    if memo is not None and memo.passed(tls.utc_now()):
        return
    problems = tls.certificate_problems(cert, key, ca)
    for p in problems:
        print(f"photonic: {p}", file=sys.stderr)
    if tls.problems_fatal(problems):
        raise PhotonicError("cannot start: fix the TLS files above")
    if memo is not None and not problems:
        memo.remember(*tls.validity_window(cert, ca))


def _agent(args: argparse.Namespace) -> int:
    config = load_agent_config(args.config)
    sec = config.security
    _preflight_tls(sec.cert_path, sec.key_path, sec.ca_path, memo_dir=config.buffer_path)
    configure_logging(args.log_level, component="agent", agent=config.agent_id)
    from photonic.agent.app import AgentApp

    summary: list[dict[str, object]] = []

    async def run(stop: asyncio.Event) -> None:
        result = await AgentApp(config).run(stop, once=args.once)
        summary.append(result.as_json())

    code = _run_daemon(run)
    if args.once and summary:
        print(json.dumps(summary[0]))
    return code


def _run_daemon(make: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> int:
    """Runs a daemon until SIGTERM or SIGINT, which set its stop event for a graceful drain."""
    from photonic.memtune import keep_freed_buffers

    keep_freed_buffers()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await make(stop)

    asyncio.run(main())
    return 0


if __name__ == "__main__":
    run()
