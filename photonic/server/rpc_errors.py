"""How a servicer answers a call whose work raised a photonic error: its status code (wire.py
keeps the one mapping) and its message; anything else goes on to the call guard, which
answers INTERNAL with a correlation id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from photonic import errors, wire

T = TypeVar("T")


async def answer(context: grpc.aio.ServicerContext, call: Callable[[], Awaitable[T]]) -> T:
    """Runs call; a photonic error aborts the RPC with its status code and message."""
    try:
        return await call()
    except errors.PhotonicError as exc:
        await context.abort(wire.status_for(exc), str(exc))
        raise AssertionError("abort returned") from exc
