"""What every RPC passes through before and while it runs, whatever its service (photonic's own,
health, reflection): an acceptable client certificate that is not revoked, revocation that ends
streams already open, and errors that reach the client without the server's internals.

Why an interceptor and not a check per method: the health and reflection services are not
photonic's code, and a check that each method must remember is one that a new method forgets.
Scopes stay with the methods (Authorizer.require), which know what they need."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from photonic import errors
from photonic.logfmt import event
from photonic.server.auth import RevocationList
from photonic.server.rpc_errors import refuse
from photonic.tls import peer_identity

log = logging.getLogger("photonic.server.guard")

REVOCATION_POLL_S = 1.0
"""How soon a change to the revocation list ends the streams it revokes."""

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]
Refuse = Callable[[grpc.aio.ServicerContext, str, str, grpc.StatusCode, str], Awaitable[None]]


class _Revoked(Exception):
    """Raised into a stream whose certificate was revoked while it was open."""


class CallGuard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Admits a call only for an acceptable, unrevoked certificate; ends open streams when
    their certificate is revoked; maps unexpected errors to INTERNAL with a correlation id
    (logged in full here, never sent: no path, class name or traceback reaches a client)."""

    def __init__(self, revocations: RevocationList, refuse: Refuse) -> None:
        """refuse(context, caller, action, code, why): counts, logs, audits and aborts
        (Authorizer.refuse, the one way every refusal is recorded)."""
        self._revocations = revocations
        self._refuse_call = refuse
        self._streams: dict[asyncio.Task[Any], tuple[str, int | None]] = {}
        self._watch: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begins watching the revocation list (on the server's event loop)."""
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_revocations(),
                                              name="photonic-revocation-watch")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails],
                                         Awaitable[grpc.RpcMethodHandler]],
            details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = str(details.method)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary), handler.request_deserializer,
                handler.response_serializer)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(method, handler.stream_unary), handler.request_deserializer,
                handler.response_serializer)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream), handler.request_deserializer,
                handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            self._stream(method, handler.stream_stream), handler.request_deserializer,
            handler.response_serializer)

    # admission ----------------------------------------------------------------------------

    async def _admit(self, context: grpc.aio.ServicerContext, method: str
                     ) -> tuple[str, int | None]:
        peer = peer_identity(context)
        if peer.agent_id is None:
            await self._refuse(context, method, "?", grpc.StatusCode.UNAUTHENTICATED,
                               peer.refusal)
        assert peer.agent_id is not None
        if refusal := self._revocations.refusal(peer.agent_id, peer.serial):
            await self._refuse(context, method, peer.agent_id, grpc.StatusCode.PERMISSION_DENIED,
                               refusal)
        return peer.agent_id, peer.serial

    async def _refuse(self, context: grpc.aio.ServicerContext, method: str, who: str,
                      code: grpc.StatusCode, why: str) -> None:
        await self._refuse_call(context, who, method.rsplit("/", 1)[-1], code, why)

    # behaviours ---------------------------------------------------------------------------

    def _unary(self, method: str, behavior: Behavior) -> Behavior:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._admit(context, method)
            try:
                return await behavior(request, context)
            except Exception as exc:  # every unexpected error is mapped here
                await self._fail(context, method, exc)
        return guarded

    def _stream(self, method: str, behavior: Behavior) -> Behavior:
        async def guarded(request: Any, context: grpc.aio.ServicerContext
                          ) -> AsyncIterator[Any]:
            who = await self._admit(context, method)
            task = asyncio.current_task()
            assert task is not None
            self._streams[task] = who
            try:
                if inspect.isasyncgenfunction(behavior):
                    async for reply in behavior(request, context):
                        yield reply
                else:
                    await behavior(request, context)
            except asyncio.CancelledError:
                if not self._revoked_now(*who):
                    raise
                await self._refuse(context, method, who[0], grpc.StatusCode.PERMISSION_DENIED,
                                   self._revocations.refusal(*who))
            except Exception as exc:  # every unexpected error is mapped here
                await self._fail(context, method, exc)
            finally:
                self._streams.pop(task, None)
        return guarded

    async def _fail(self, context: grpc.aio.ServicerContext, method: str,
                    exc: Exception) -> None:
        """A photonic error keeps its message and status; anything else is INTERNAL with a
        correlation id, logged with its traceback here. gRPC's own abort passes through."""
        if isinstance(exc, grpc.aio.AbortError):
            raise exc
        if isinstance(exc, errors.PhotonicError):
            await refuse(context, exc)
        correlation = uuid.uuid4().hex[:16]
        log.error("call_failed", exc_info=exc, extra={
            "event": "call_failed", "method": method, "correlation_id": correlation,
            "error": f"{type(exc).__name__}: {exc}"})
        await context.abort(grpc.StatusCode.INTERNAL,
                            f"internal error on the server (correlation id {correlation}); "
                            "the server's log has the details")

    # revocation of open streams -----------------------------------------------------------

    def _revoked_now(self, agent_id: str, serial: int | None) -> bool:
        return bool(self._revocations.refusal(agent_id, serial))

    async def _watch_revocations(self) -> None:
        seen = self._revocations.version
        while True:
            await asyncio.sleep(REVOCATION_POLL_S)
            self._revocations.refresh()
            if self._revocations.version == seen:
                continue
            seen = self._revocations.version
            for task, who in list(self._streams.items()):
                if self._revoked_now(*who):
                    event(log, "stream_revoked", logging.WARNING, caller=who[0])
                    task.cancel()
