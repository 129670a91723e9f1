"""Who is calling and what they may do: identity from the TLS peer certificate only, scopes
from server.yaml, a revocation list re-read whenever its file changes, and an audit trail."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from photonic.logfmt import event
from photonic.models import AgentId, Scope
from photonic.server.catalog import Catalog
from photonic.server.metrics import ServerMetrics
from photonic.tls import peer_identity

log = logging.getLogger("photonic.server.auth")


@dataclass(frozen=True)
class Caller:
    agent_id: AgentId
    scopes: frozenset[Scope]

    def may(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes


class RevocationList:
    """Agent ids and certificate serials (decimal or 0x-hex) that are refused; one per line,
    `#` comments. The file is re-read when its mtime changes, so revoking needs no restart.

    Fails closed: once a list is configured, a missing or unreadable file refuses every
    certificate (deleting the file must not lift every revocation at once)."""

    MISSING = ("the server's revocation list is missing or unreadable; every certificate is "
               "refused until it is restored")

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._ids: frozenset[str] = frozenset()
        self._serials: frozenset[int] = frozenset()
        self._unreadable = False
        self.version = 0
        """Goes up at every change the list sees: streams opened before are checked again."""

    def refresh(self) -> None:
        if self._path is None:
            return
        try:
            st = self._path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._stamp and not self._unreadable:
                return
            text = self._path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            if not self._unreadable:
                self._unreadable, self._stamp = True, None
                self.version += 1
                event(log, "revocation_list_missing", logging.ERROR, path=str(self._path),
                      error=str(exc), effect="every certificate is refused")
            return
        ids: set[str] = set()
        serials: set[int] = set()
        for raw in text.splitlines():
            item = raw.split("#", 1)[0].strip()
            if not item:
                continue
            try:
                serials.add(int(item, 16) if item.lower().startswith("0x") else int(item))
            except ValueError:
                ids.add(item)
        self._ids, self._serials, self._stamp = frozenset(ids), frozenset(serials), stamp
        self._unreadable = False
        self.version += 1

    def refusal(self, agent_id: str, serial: int | None) -> str:
        """Why this certificate is refused now, or "" when it is not revoked."""
        self.refresh()
        if self._unreadable:
            return self.MISSING
        if agent_id in self._ids or (serial is not None and serial in self._serials):
            return f"the certificate of {agent_id!r} is revoked"
        return ""

    def revoked(self, agent_id: str, serial: int | None) -> bool:
        return bool(self.refusal(agent_id, serial))


MAX_AUDIT_FIELD_CHARS = 512
"""A row's target and detail are cut to this: a caller must not be able to grow the table
by sending long strings."""


class AuditBudget:
    """Rows per caller: a burst, then one per refill interval; refusals beyond it are counted,
    not written, so one caller cannot fill the disk or drown everyone else's rows."""

    def __init__(self, burst: int = 60, refill_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._burst = burst
        self._refill_s = refill_s
        self._clock = clock
        self._tokens: dict[str, tuple[float, float]] = {}  # actor -> (tokens, when)

    def take(self, actor: str) -> bool:
        now = self._clock()
        tokens, when = self._tokens.get(actor, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - when) / self._refill_s)
        if tokens < 1:
            self._tokens[actor] = (tokens, now)
            return False
        self._tokens[actor] = (tokens - 1, now)
        if len(self._tokens) > 10_000:  # forget the oldest callers, not the newest
            for stale in sorted(self._tokens, key=lambda a: self._tokens[a][1])[:5_000]:
                del self._tokens[stale]
        return True


class Authorizer:
    def __init__(self, agent_scopes: Mapping[str, frozenset[Scope]],
                 default_scopes: frozenset[Scope], catalog: Catalog,
                 metrics: ServerMetrics, *,
                 room_for_audit: Callable[[], bool] = lambda: True,
                 budget: AuditBudget | None = None, archive: bool = False) -> None:
        """room_for_audit: False while the disk is under its reserve (min_free_space): rows
        are then counted, not written. archive: this server is an archive node
        (server.role), which takes uploads from primaries, not from agents (require_upload)."""
        self._archive = archive
        self._scopes = agent_scopes
        self._default = default_scopes
        self._catalog = catalog
        self._metrics = metrics
        self._room = room_for_audit
        self._budget = budget or AuditBudget()

    def scopes_of(self, agent_id: str) -> frozenset[Scope]:
        """The scopes server.yaml gives this certificate identity (the default ones when it
        names none); the web layer's client certificates are judged by it too."""
        return self._scopes.get(agent_id, self._default)

    async def require(self, context: grpc.aio.ServicerContext, scope: Scope, action: str,
                      claimed_agent_id: str = "") -> Caller:
        """The verified caller, or the RPC is aborted (and audited) with the right status.
        The call guard (guard.py) admitted the certificate before any method runs (one agent,
        not a CA, not revoked); what is left here is what the method needs: scopes, and not
        acting as another agent."""
        peer = peer_identity(context)
        if peer.agent_id is None:  # only where no guard admitted the call
            await self.refuse(context, "?", action, grpc.StatusCode.UNAUTHENTICATED,
                              peer.refusal)
        assert peer.agent_id is not None
        cn = peer.agent_id
        caller = Caller(AgentId(cn), self._scopes.get(cn, self._default))
        if claimed_agent_id and claimed_agent_id != cn and not caller.may(Scope.ADMIN):
            await self.refuse(context, cn, action, grpc.StatusCode.PERMISSION_DENIED,
                              f"certificate {cn!r} may not act as agent {claimed_agent_id!r}")
        if not caller.may(scope):
            await self.refuse(context, cn, action, grpc.StatusCode.PERMISSION_DENIED,
                              f"{cn!r} lacks the {scope.value!r} scope needed for {action}")
        return caller

    async def require_upload(self, context: grpc.aio.ServicerContext, action: str,
                             claimed_agent_id: str = "") -> Caller:
        """RegisterAgent and SyncBatch: the `replicate` scope (a primary replicating to this
        server) or `sync`. An archive node takes `sync` only from a certificate server.yaml
        names with it (agents:), never from default_scopes: it is no agent's server unless
        configured to be."""
        peer = peer_identity(context)
        cn = peer.agent_id
        if cn is not None and Scope.REPLICATE in self.scopes_of(cn):
            return await self.require(context, Scope.REPLICATE, action, claimed_agent_id)
        named = self._scopes.get(cn or "", frozenset())
        if self._archive and cn is not None and not named & {Scope.SYNC, Scope.ADMIN}:
            await self.refuse(
                context, cn, action, grpc.StatusCode.PERMISSION_DENIED,
                f"this server is an archive node: it takes replication from primaries with "
                f"the 'replicate' scope, and uploads only from certificates its server.yaml "
                f"gives 'sync' by name; {cn!r} has neither")
        return await self.require(context, Scope.SYNC, action, claimed_agent_id)

    async def require_any(self, context: grpc.aio.ServicerContext, scopes: tuple[Scope, ...],
                          action: str) -> Caller:
        """The caller, when it holds at least one of scopes (FetchBlob: a worker for its
        job's input, or an admin for anything)."""
        for scope in scopes[:-1]:
            peer = peer_identity(context)
            if peer.agent_id is not None and scope in self._scopes.get(peer.agent_id,
                                                                       self._default):
                return await self.require(context, scope, action)
        return await self.require(context, scopes[-1], action)

    async def refuse(self, context: grpc.aio.ServicerContext, who: str, action: str,
                     code: grpc.StatusCode, why: str) -> None:
        """Counts, logs and audits a refusal, then aborts the call with it."""
        self._metrics.refused_calls.labels(code.name.lower()).inc()
        event(log, "call_refused", logging.WARNING, caller=who, action=action, reason=why)
        await self.audit(who, action, "", "refused", why)
        await context.abort(code, why)

    async def audit(self, actor: str, action: str, target: str, result: str,
                    detail: str = "") -> None:
        """Appends to the audit table; state-changing calls and refusals both land here,
        within the caller's budget and while the disk has room (else only counted)."""
        if not self._budget.take(actor):
            self._metrics.audit_rows_dropped.labels("rate").inc()
            return
        if not await asyncio.to_thread(self._room):
            self._metrics.audit_rows_dropped.labels("disk").inc()
            return
        await asyncio.to_thread(self._catalog.audit, actor[:MAX_AUDIT_FIELD_CHARS], action,
                                target[:MAX_AUDIT_FIELD_CHARS], result,
                                detail[:MAX_AUDIT_FIELD_CHARS])
