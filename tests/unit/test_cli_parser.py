"""photonic builds only the subparser of the command it runs when that is a daemon or an
agent tool (photonic.cli.ALONE, issue 16: start-up time); these prove that changes nothing a
user can see: the same Namespace, the same help, the same errors and exit codes."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from photonic import cli

SAME_RESULT = [
    ["agent", "--once"],
    ["agent", "--config", "a.yaml"],
    ["--log-level", "debug", "agent", "--config", "a.yaml", "--once"],
    ["--log-format=json", "--log-level=warning", "server", "--config", "s.yaml"],
    ["server", "promote", "--from-primary", "p1", "--dry-run"],
    ["status", "--json", "--remote"],
    ["conflicts", "keep-server", "3", "4"],
    ["conflicts", "list", "--all"],
    # Errors: each must print the same usage and message and exit 2 either way.
    ["agent", "--bogus"],
    ["agent", "--help"],
    ["status", "-h"],
    ["status", "--watch", "extra"],
    ["conflicts", "forget"],
    ["conflicts", "list", "x"],
    ["server", "promote"],
    ["--log-level", "loud", "agent"],
    ["--log-level", "agent"],
]


def _outcome(argv: list[str], parser: argparse.ArgumentParser) -> tuple[object, str, str]:
    """(the parsed Namespace as a dict or the SystemExit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result: object = vars(parser.parse_args(argv))
        except SystemExit as exc:
            result = ("exit", exc.code)
    return result, out.getvalue(), err.getvalue()


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    """The command names a parser's subparsers action offers."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


@pytest.mark.parametrize("argv", SAME_RESULT, ids=" ".join)
def test_the_parser_built_for_argv_parses_it_as_the_whole_parser_does(argv: list[str]) -> None:
    """Parsed values, --help text, usage errors and exit codes are identical."""
    assert _outcome(argv, cli._parser(argv)) == _outcome(argv, cli._parser())


@pytest.mark.parametrize(("argv", "command"), [
    (["agent"], "agent"), (["--log-level", "debug", "status"], "status"),
    (["--log-format=json", "server"], "server"), (["conflicts", "list"], "conflicts"),
])
def test_daemons_and_agent_tools_get_their_own_subparser_alone(argv: list[str],
                                                               command: str) -> None:
    """The command's own subparser only: nothing else is built (or imported) for it."""
    assert _commands(cli._parser(argv)) == [command]


@pytest.mark.parametrize("argv", [
    [], ["--help"], ["-h", "agent"], ["--version"], ["--log-lev", "debug", "agent"],
    ["jobs", "list"], ["--", "agent"], ["nonsense"],
])
def test_anything_else_gets_the_whole_parser(argv: list[str]) -> None:
    """Top-level help, --version, abbreviations and the other commands see every command."""
    assert {"agent", "status", "jobs", "web", "scrub", "certs"} <= set(_commands(cli._parser(argv)))
