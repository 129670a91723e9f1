"""The agents application layer: registering, heartbeats, status, pausing, conflicts and the
event feed. The gRPC servicer (rpc_sync.py) and the coming dashboard both call it, so the
rules (who may see or change which agent, max_agents, what is audited) live here once.

Refusals raise photonic errors after their audit row is written; transports map them to
their own status codes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from photonic import errors
from photonic.models import AgentId, AgentState, Scope
from photonic.rates import eta_s
from photonic.server.auth import Caller
from photonic.server.catalog import Catalog, ConflictRow
from photonic.server.events import EventHub, ServerEvent
from photonic.server.library import Library
from photonic.server.metrics import ServerMetrics
from photonic.server.receive_rates import ReceiveRates
from photonic.shoots import PendingShoot, pending_shoots_problem

MAX_HOSTNAME_CHARS = 253  # the longest DNS name
MAX_VERSION_CHARS = 64
MAX_NAME_CHARS = 255
MAX_WATCHES = 1000
MAX_RESEND_PER_HEARTBEAT = 100
"""Quarantined contents an agent is asked to send again per heartbeat (see sync.proto)."""

Audit = Callable[[str, str, str, str, str], Awaitable[None]]
"""(actor, action, target, result, detail): Authorizer.audit, budgeted and bounded."""


class NotRegistered(errors.NotReady):
    """The agent has no catalog row yet: it must call RegisterAgent first (which is where
    max_agents and the audit trail begin). Not the caller's input at fault, and not missing
    for good (FAILED_PRECONDITION on the wire)."""


class Keep(StrEnum):
    """Which version a resolved conflict keeps as head."""

    INCOMING = "incoming"
    SERVER = "server"


@dataclass(frozen=True)
class Registration:
    hostname: str
    version: str
    watch_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Registered:
    agent_id: AgentId
    scopes: frozenset[Scope]
    paused: bool


@dataclass(frozen=True)
class AgentReport:
    """What an agent says of itself in a heartbeat."""

    state: AgentState
    queue_depth: int = 0
    bytes_pending: int = 0
    missing_watches: tuple[str, ...] = ()
    pending_shoots: tuple[PendingShoot, ...] = ()
    """What is still only on the agent, by shoot (bounded: photonic.shoots)."""


@dataclass(frozen=True)
class HeartbeatReply:
    paused: bool
    resend_sha256: tuple[str, ...]
    """Quarantined contents this agent holds and should send again."""


EVERY_AGENT = "*"
"""GetSyncStatus's agent_id for an admin's view of every agent's open conflicts."""


@dataclass(frozen=True)
class AgentStatus:
    agent_id: str
    state: AgentState
    photos: int
    bytes_stored: int
    last_seen_ms: int
    last_sync_ms: int
    paused: bool
    queue_depth: int
    bytes_pending: int
    missing_watches: tuple[str, ...]
    open_conflicts: tuple[ConflictRow, ...]
    rate_bytes_per_s: float = 0.0
    """Bytes this server received from the agent per second over the last 30 s."""
    eta_s: float | None = None
    """bytes_pending at that rate; None (null) when unknown: nothing pending or moving."""


def registration_problem(registration: Registration) -> str:
    """Why a registration's strings are refused ("" when they are fine): each is stored and
    audited, so each is bounded."""
    if len(registration.hostname) > MAX_HOSTNAME_CHARS:
        return (f"hostname is {len(registration.hostname)} characters; "
                f"at most {MAX_HOSTNAME_CHARS}")
    if len(registration.version) > MAX_VERSION_CHARS:
        return f"version is longer than {MAX_VERSION_CHARS} characters"
    return watch_names_problem(registration.watch_names, "watch names")


def watch_names_problem(names: Sequence[str], what: str) -> str:
    """Why a list of watch names is refused ("" when it is fine): bounded in count and length,
    since the catalog stores it."""
    if len(names) > MAX_WATCHES or any(len(n) > MAX_NAME_CHARS for n in names):
        return f"at most {MAX_WATCHES} {what} of at most {MAX_NAME_CHARS} characters each"
    return ""


class AgentsService:
    def __init__(self, catalog: Catalog, library: Library, events: EventHub,
                 metrics: ServerMetrics, audit: Audit, *, max_agents: int,
                 rates: ReceiveRates | None = None) -> None:
        self._catalog = catalog
        self._rates = rates or ReceiveRates()
        self._library = library
        self._events = events
        self._metrics = metrics
        self._audit = audit
        self._max_agents = max_agents

    async def register(self, caller: Caller, registration: Registration) -> Registered:
        """Adds (or refreshes) the caller's agent row. A new agent beyond max_agents is
        refused; an agent already known always gets back in."""
        if problem := registration_problem(registration):
            await self._audit(caller.agent_id, "RegisterAgent", "", "refused", problem)
            raise errors.InvalidInput(problem)
        known = await asyncio.to_thread(self._catalog.get_agent, caller.agent_id)
        if known is None and await asyncio.to_thread(self._catalog.agent_count) >= self._max_agents:
            await self._audit(caller.agent_id, "RegisterAgent", "", "refused", "max_agents")
            raise errors.LimitExceeded(
                f"the server already serves max_agents={self._max_agents} agents")
        await asyncio.to_thread(self._catalog.register_agent, caller.agent_id,
                                registration.hostname, registration.version)
        await self._audit(caller.agent_id, "RegisterAgent", registration.hostname, "ok", "")
        self._events.publish(ServerEvent("agent_registered", caller.agent_id,
                                         detail=registration.hostname))
        row = await asyncio.to_thread(self._catalog.get_agent, caller.agent_id)
        return Registered(caller.agent_id, caller.scopes, bool(row and row.paused))

    async def heartbeat(self, caller: Caller, report: AgentReport) -> HeartbeatReply:
        """Records what the agent says of itself (catalog row, state gauge) and answers
        whether it is paused and which quarantined contents it should send again."""
        if problem := (watch_names_problem(report.missing_watches, "missing watches")
                       or pending_shoots_problem(report.pending_shoots)):
            raise errors.InvalidInput(problem)
        await asyncio.to_thread(self._catalog.heartbeat, caller.agent_id, report.state.value,
                                report.queue_depth, report.bytes_pending,
                                report.missing_watches, report.pending_shoots)
        for s in AgentState:
            self._metrics.agent_state.labels(caller.agent_id, s.value).set(
                int(s is report.state))
        self._metrics.agent_queue_depth.labels(caller.agent_id).set(report.queue_depth)
        self._metrics.agent_bytes_pending.labels(caller.agent_id).set(report.bytes_pending)
        row = await asyncio.to_thread(self._catalog.get_agent, caller.agent_id)
        if row is None:
            raise NotRegistered(
                f"{caller.agent_id} is not registered; call RegisterAgent first")
        resend = await asyncio.to_thread(self._catalog.wanted_from, caller.agent_id,
                                         MAX_RESEND_PER_HEARTBEAT)
        return HeartbeatReply(row.paused, tuple(resend))

    async def resolve_conflicts(self, caller: Caller, keep: Keep | None,
                                conflict_ids: Sequence[int], all_open: bool = False
                                ) -> list[int]:
        """Settles parked conflicts (every open one when all_open), in order; each is audited.
        An unknown id stops there: the ones before it stay resolved."""
        await self._need_admin(caller, "ResolveConflicts")
        if keep is None:
            raise errors.InvalidInput("say which version to keep: incoming or server")
        ids = list(conflict_ids)
        if all_open:
            ids = [c.id for c in await asyncio.to_thread(self._catalog.open_conflicts, None)]
        keep_incoming = keep is Keep.INCOMING
        resolved: list[int] = []
        for cid in ids:
            try:
                await asyncio.to_thread(self._library.resolve, cid, keep_incoming)
            except errors.NotFound:
                await self._audit(caller.agent_id, "ResolveConflicts", str(cid),
                                  "not_found", "")
                raise
            resolved.append(cid)
            await self._audit(caller.agent_id, "ResolveConflicts", str(cid), "ok",
                              "keep_incoming" if keep_incoming else "keep_server")
        return resolved

    async def target_agent(self, caller: Caller, requested: str, action: str) -> str:
        """The agent a call is about: the caller itself (when requested is empty or its own
        id), or another one for an admin; anyone else is refused and audited."""
        if requested and requested != caller.agent_id and not caller.may(Scope.ADMIN):
            await self._audit(caller.agent_id, action, requested, "refused",
                              "another agent needs the admin scope")
            raise errors.AuthError(f"{caller.agent_id!r} may only see or change itself; "
                                   f"{requested!r} needs the admin scope")
        return requested or caller.agent_id

    async def status(self, caller: Caller, requested: str = "") -> AgentStatus:
        """An agent's row, library totals and open conflicts (its own, or any for an admin).
        EVERY_AGENT ("*", admin only) answers every agent's open conflicts, beside the
        caller's own row or an empty one: what `photonic conflicts list` shows."""
        overview = requested == EVERY_AGENT
        agent_id = await self.target_agent(caller, requested, "GetSyncStatus")
        if overview:
            agent_id = caller.agent_id
        row = await asyncio.to_thread(self._catalog.get_agent, agent_id)
        conflicts = await asyncio.to_thread(self._catalog.open_conflicts,
                                            None if overview else agent_id)
        if row is None:
            if not overview:
                raise errors.NotFound(f"no agent {agent_id!r} is known")
            return AgentStatus(agent_id, AgentState.OFFLINE, 0, 0, 0, 0, False, 0, 0, (),
                               tuple(conflicts))
        photos, stored = await asyncio.to_thread(self._catalog.agent_totals, agent_id)
        rate = self._rates.rate(agent_id)
        return AgentStatus(
            agent_id=agent_id, state=AgentState(row.state), photos=photos, bytes_stored=stored,
            last_seen_ms=row.last_seen_ms, last_sync_ms=row.last_sync_ms, paused=row.paused,
            queue_depth=row.queue_depth, bytes_pending=row.bytes_pending,
            missing_watches=row.missing_watches, open_conflicts=tuple(conflicts),
            rate_bytes_per_s=rate, eta_s=eta_s(row.bytes_pending, rate))

    async def pause(self, caller: Caller, requested: str, paused: bool) -> bool:
        """Pauses or resumes syncing; returns whether the agent is paused now. An admin's
        pause is its own flag, which the agent's resume does not clear."""
        agent_id = await self.target_agent(caller, requested, "PauseSyncing")
        by_admin = caller.may(Scope.ADMIN)
        now = await asyncio.to_thread(self._catalog.set_paused, agent_id, paused,
                                      by_admin=by_admin)
        if now is None:
            await self._audit(caller.agent_id, "PauseSyncing", agent_id, "not_found", "")
            raise errors.NotFound(f"no agent {agent_id!r} is known")
        who = "admin" if by_admin else "agent"
        await self._audit(caller.agent_id, "PauseSyncing", agent_id, "ok",
                          f"{'paused' if paused else 'resumed'} by {who}")
        self._events.publish(ServerEvent("paused", agent_id, detail=str(now)))
        return now

    async def events(self, caller: Caller, requested: str = ""
                     ) -> AsyncIterator[ServerEvent]:
        """The live event feed, checked before it opens: an admin sees every agent's events
        (or requested's), anyone else only its own."""
        only: str | None
        if caller.may(Scope.ADMIN):
            only = requested or None
        else:
            only = await self.target_agent(caller, requested, "StreamEvents")
        return self._feed(only)

    async def _feed(self, only: str | None) -> AsyncIterator[ServerEvent]:
        async for ev in self._events.subscribe():
            if only is None or ev.agent_id == only:
                yield ev

    async def _need_admin(self, caller: Caller, action: str) -> None:
        """The transports check scopes first; this keeps the rule with the operation, for a
        caller that reached it another way."""
        if not caller.may(Scope.ADMIN):
            await self._audit(caller.agent_id, action, "", "refused",
                              f"{caller.agent_id!r} lacks the 'admin' scope needed for {action}")
            raise errors.AuthError(
                f"{caller.agent_id!r} lacks the 'admin' scope needed for {action}")
