"""Dialing servers: a channel is ready or the server is unreachable (Transient), and of several
endpoints the first that answers, in the configured order, is the one used. Shared by the
agent's sync client and the admin jobs client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import grpc

from photonic import errors


async def wait_ready(channel: grpc.aio.Channel, endpoint: str, timeout_s: float) -> None:
    """Returns once the channel is connected; Transient naming endpoint after timeout_s."""
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout_s)
    except TimeoutError as exc:
        raise errors.Transient(f"server {endpoint} is not reachable") from exc


class Dialed(Protocol):
    async def ready(self, timeout_s: float) -> None: ...

    async def close(self) -> None: ...


C = TypeVar("C", bound=Dialed)


async def first_reachable(endpoints: Sequence[str], client_of: Callable[[str], C],
                          timeout_s: float) -> C:
    """The client of the first endpoint that answers within timeout_s, tried in order;
    Transient naming every endpoint's problem when none does."""
    problems: list[str] = []
    for endpoint in endpoints:
        client = client_of(endpoint)
        try:
            await client.ready(timeout_s)
            return client
        except errors.Transient as exc:
            problems.append(str(exc))
            with contextlib.suppress(Exception):
                await client.close()
    raise errors.Transient("; ".join(problems) or "no server endpoints configured")
