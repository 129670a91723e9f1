"""rpc_errors.refuse: what a refused call's client is told and what the server logs, once per
refusal, under the correlation id the client is given."""

from __future__ import annotations

import asyncio
import logging
import re

import grpc
import pytest

from photonic import errors
from photonic.server.rpc_errors import refuse

ADDRESS = "postgresql://photonic@db.internal/photonic?host=/run/pg-secret"


class Aborted(Exception):
    pass


class FakeContext:
    """The one call refuse makes on a servicer context."""

    def __init__(self) -> None:
        self.told: tuple[grpc.StatusCode, str] | None = None

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.told = (code, details)
        raise Aborted


def _refuse(exc: errors.PhotonicError, **kwargs: str) -> tuple[grpc.StatusCode, str]:
    context = FakeContext()
    with pytest.raises(Aborted):
        asyncio.run(refuse(context, exc, **kwargs))  # type: ignore[arg-type]
    assert context.told is not None
    return context.told


def _events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", "")]


def test_a_stream_refusal_is_one_line_under_the_clients_own_correlation_id(
        caplog: pytest.LogCaptureFixture) -> None:
    """The sync stream's event carries the whole message and the id the agent sent, and the
    agent is told that id with the plain text: no second `call_refused` line."""
    caplog.set_level(logging.INFO, logger="photonic.server.rpc")
    exc = errors.Transient(f"cannot reach {ADDRESS}",
                           client_message="the server's database is unreachable now")
    code, told = _refuse(exc, correlation_id="0123456789abcdef",
                         logged_as="sync_stream_refused", agent="laptop")
    assert code is grpc.StatusCode.UNAVAILABLE
    assert told == ("the server's database is unreachable now "
                    "(correlation id 0123456789abcdef)")
    (record,) = _events(caplog)
    assert record.__dict__["event"] == "sync_stream_refused"
    assert record.__dict__["agent"] == "laptop"
    assert record.__dict__["correlation_id"] == "0123456789abcdef"
    assert ADDRESS in record.__dict__["reason"]


def test_a_stream_refusal_with_a_plain_message_is_logged_and_told_as_is(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="photonic.server.rpc")
    code, told = _refuse(errors.LimitExceeded("too many streams from this agent; close one"),
                         correlation_id="", logged_as="sync_stream_refused", agent="laptop")
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert told == "too many streams from this agent; close one"
    (record,) = _events(caplog)
    assert record.__dict__["event"] == "sync_stream_refused"
    assert record.__dict__["reason"] == told


def test_any_other_call_logs_an_internal_message_under_a_new_correlation_id(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="photonic.server.rpc")
    exc = errors.Transient(f"cannot reach {ADDRESS}",
                           client_message="the server's database is unreachable now")
    _code, told = _refuse(exc)
    match = re.fullmatch(r"the server's database is unreachable now "
                         r"\(correlation id ([0-9a-f]{16})\)", told)
    assert match is not None, told
    (record,) = _events(caplog)
    assert record.__dict__["event"] == "call_refused"
    assert record.__dict__["correlation_id"] == match.group(1)
    assert ADDRESS in record.__dict__["error"]


def test_a_plain_refusal_of_any_other_call_is_not_logged_here(
        caplog: pytest.LogCaptureFixture) -> None:
    """Its message is the client's to read, and the caller's own log line tells it."""
    caplog.set_level(logging.INFO, logger="photonic.server.rpc")
    _code, told = _refuse(errors.NotFound("no such job"))
    assert told == "no such job"
    assert _events(caplog) == []
