"""The call guard's error mapping, on a real grpc.aio server with real mutual TLS: a method
that fails unexpectedly reaches the client as INTERNAL with a correlation id and nothing else
(no exception class, message, path or traceback), and the server's log has the details under
the same id; a photonic error keeps its status and message."""

from __future__ import annotations

import asyncio
import logging
import re

import grpc
import pytest

from photonic import errors
from photonic.grpc_options import CHANNEL_OPTIONS
from photonic.server.auth import RevocationList
from photonic.server.guard import CallGuard
from photonic.tls import channel_credentials, server_credentials
from tests.support.pki import TestPki

SECRET = "/srv/photonic/storage/objects/ab/cd/secret"


async def _unexpected(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise FileNotFoundError(2, "No such file or directory", SECRET)


async def _photonic(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise errors.LimitExceeded("too many streams from this agent; close one")


async def _call(pki: TestPki, method: str) -> grpc.aio.AioRpcError:
    async def refuse(context: grpc.aio.ServicerContext, who: str, action: str,
                     code: grpc.StatusCode, why: str) -> None:
        await context.abort(code, why)

    guard = CallGuard(RevocationList(None), refuse)
    server = grpc.aio.server(interceptors=[guard])
    handlers = {"Unexpected": grpc.unary_unary_rpc_method_handler(_unexpected),
                "Photonic": grpc.unary_unary_rpc_method_handler(_photonic)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", handlers),))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(
        pki.server_cert, pki.server_key, pki.ca))
    await server.start()
    try:
        async with grpc.aio.secure_channel(
                f"localhost:{port}", channel_credentials(pki.agent_cert("laptop"),
                                                         pki.agent_key("laptop"), pki.ca),
                options=list(CHANNEL_OPTIONS)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await channel.unary_unary(f"/t.T/{method}")(b"", timeout=10)
            return failed.value
    finally:
        await server.stop(0)


def test_an_unexpected_error_is_internal_with_a_correlation_id_only(
        pki: TestPki, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="photonic.server.guard")
    error = asyncio.run(_call(pki, "Unexpected"))
    assert error.code() is grpc.StatusCode.INTERNAL
    details = error.details() or ""
    match = re.fullmatch(r"internal error on the server \(correlation id ([0-9a-f]{16})\); "
                         r"the server's log has the details", details)
    assert match is not None, details
    assert SECRET not in details and "FileNotFoundError" not in details
    (record,) = [r for r in caplog.records if getattr(r, "event", "") == "call_failed"]
    assert record.__dict__["correlation_id"] == match.group(1)
    assert SECRET in record.__dict__["error"] and record.exc_info is not None


def test_a_photonic_error_keeps_its_status_and_message(pki: TestPki) -> None:
    error = asyncio.run(_call(pki, "Photonic"))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == "too many streams from this agent; close one"
