"""How a servicer answers a call whose work raised a photonic error: its status code (wire.py
keeps the one mapping) and its message; anything else goes on to the call guard, which
answers INTERNAL with a correlation id."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import grpc

from photonic import errors, wire
from photonic.logfmt import event

log = logging.getLogger("photonic.server.rpc")

T = TypeVar("T")


async def answer(context: grpc.aio.ServicerContext, call: Callable[[], Awaitable[T]]) -> T:
    """Runs call; a photonic error aborts the RPC with its status code and message."""
    try:
        return await call()
    except errors.PhotonicError as exc:
        await refuse(context, exc)


async def refuse(context: grpc.aio.ServicerContext, exc: errors.PhotonicError, *,
                 correlation_id: str = "", logged_as: str | None = None,
                 **fields: str) -> NoReturn:
    """Aborts the call with the error's status code and the text a client may read. An error
    whose message names the server's internals (a database's address) is logged whole here,
    under a correlation id the client is given with the plain text: the client's own
    (correlation_id, from its call's metadata) when it sent one, else a new one.

    logged_as: the caller's event for every refusal of its calls, logged here with fields,
    the correlation id and the whole message, so that one line tells each refusal (not that
    event and then `call_refused` again)."""
    text = errors.for_client(exc)
    internal = exc.client_message is not None  # the whole message is the server's log's only
    correlation = correlation_id or (uuid.uuid4().hex[:16] if internal else "")
    if internal:
        text = f"{text} (correlation id {correlation})"
    if logged_as is not None:
        event(log, logged_as, logging.WARNING, **fields, correlation_id=correlation,
              reason=str(exc))
    elif internal:
        event(log, "call_refused", logging.WARNING, correlation_id=correlation,
              error=f"{type(exc).__name__}: {exc}")
    await context.abort(wire.status_for(exc), text)
    raise AssertionError("abort returned") from exc
