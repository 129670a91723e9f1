"""AgentsService on a real catalog, library and audit trail, without gRPC: the rules the sync
servicer and the dashboard share (max_agents, bounded registrations, who may see or change
which agent, resolving conflicts, an admin's pause against the agent's own) and the audit
row each refusal and change leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from photonic import errors
from photonic.models import AgentId, AgentState, ConflictPolicy, ManifestEntry, Scope
from photonic.server.agents_service import (
    MAX_HOSTNAME_CHARS,
    MAX_WATCHES,
    AgentReport,
    AgentsService,
    Keep,
    NotRegistered,
    Registration,
)
from photonic.server.auth import Authorizer, Caller
from photonic.server.events import LocalEventHub, ServerEvent
from photonic.server.ingest_deps import IngestDeps
from tests.support.catalogs import Catalogs
from tests.support.ingest import IngestStream, real_ingest_deps, sha_of, whole_chunk

LAPTOP = Caller(AgentId("laptop"), frozenset({Scope.SYNC}))
DESKTOP = Caller(AgentId("desktop"), frozenset({Scope.SYNC}))
ADMIN = Caller(AgentId("admin"), frozenset({Scope.ADMIN}))


class World:
    """The service with everything real behind it; audit rows go to the catalog through an
    Authorizer, as on the server."""

    def __init__(self, root: Path, catalogs: Catalogs, max_agents: int = 10) -> None:
        self.deps: IngestDeps = real_ingest_deps(root, catalog=catalogs.new(root))
        self.catalog = self.deps.catalog
        self.events = LocalEventHub()
        auth = Authorizer({}, frozenset({Scope.SYNC}), self.catalog, self.deps.metrics)
        self.service = AgentsService(self.catalog, self.deps.library, self.events,
                                     self.deps.metrics, auth.audit, max_agents=max_agents)

    def audit(self, action: str) -> list[tuple[str, str, str, str]]:
        """(actor, target, result, detail) of action's rows, oldest first."""
        return [(r[1], r[3], r[4], r[5]) for r in reversed(self.catalog.audit_rows())
                if r[2] == action]

    async def register(self, *callers: Caller) -> None:
        for c in callers:
            await self.service.register(c, Registration(f"{c.agent_id}.local", "1.0"))


@pytest.fixture
def world(tmp_path: Path, catalogs: Catalogs) -> Iterator[World]:
    """On each catalog engine in turn (SQLite, PostgreSQL)."""
    w = World(tmp_path, catalogs)
    yield w


def test_registering_returns_scopes_and_pause_and_is_audited(world: World) -> None:
    async def scenario() -> None:
        got = await world.service.register(LAPTOP, Registration("laptop.local", "1.0",
                                                                ("photos",)))
        assert (got.agent_id, got.scopes, got.paused) == ("laptop", LAPTOP.scopes, False)
        row = world.catalog.get_agent("laptop")
        assert row is not None and row.hostname == "laptop.local"

    asyncio.run(scenario())
    assert world.audit("RegisterAgent") == [("laptop", "laptop.local", "ok", "")]


def test_max_agents_refuses_a_new_agent_but_not_a_known_one(
        tmp_path: Path, catalogs: Catalogs) -> None:
    world = World(tmp_path, catalogs, max_agents=1)

    async def scenario() -> None:
        await world.register(LAPTOP)
        with pytest.raises(errors.LimitExceeded, match="max_agents=1"):
            await world.register(DESKTOP)
        await world.register(LAPTOP)  # already counted: it always gets back in

    asyncio.run(scenario())
    assert world.catalog.get_agent("desktop") is None
    assert world.audit("RegisterAgent")[1] == ("desktop", "", "refused", "max_agents")
    assert world.catalog.agent_count() == 1


@pytest.mark.parametrize(("registration", "why"), [
    (Registration("h" * (MAX_HOSTNAME_CHARS + 1), "1.0"), "hostname is 254 characters"),
    (Registration("laptop", "v" * 65), "version is longer than 64"),
    (Registration("laptop", "1.0", ("photos",) * (MAX_WATCHES + 1)), "watch names"),
    (Registration("laptop", "1.0", ("p" * 256,)), "watch names"),
])
def test_unbounded_registrations_are_refused_and_audited(
        world: World, registration: Registration, why: str) -> None:
    with pytest.raises(errors.InvalidInput, match=why):
        asyncio.run(world.service.register(LAPTOP, registration))
    assert world.catalog.get_agent("laptop") is None
    [(actor, target, result, detail)] = world.audit("RegisterAgent")
    assert (actor, target, result) == ("laptop", "", "refused") and why in detail


def test_heartbeat_records_state_and_needs_registration(world: World) -> None:
    report = AgentReport(AgentState.SYNCING, queue_depth=3, bytes_pending=1000,
                         missing_watches=("card",))
    with pytest.raises(NotRegistered, match="call RegisterAgent first"):
        asyncio.run(world.service.heartbeat(LAPTOP, report))
    asyncio.run(world.register(LAPTOP))
    reply = asyncio.run(world.service.heartbeat(LAPTOP, report))
    assert (reply.paused, reply.resend_sha256) == (False, ())
    row = world.catalog.get_agent("laptop")
    assert row is not None
    assert (row.state, row.queue_depth, row.missing_watches) == ("syncing", 3, ("card",))
    with pytest.raises(errors.InvalidInput, match="missing watches"):
        asyncio.run(world.service.heartbeat(
            LAPTOP, AgentReport(AgentState.SYNCING, missing_watches=("x" * 256,))))


def test_another_agents_status_needs_admin(world: World) -> None:
    asyncio.run(world.register(LAPTOP, DESKTOP))
    own = asyncio.run(world.service.status(LAPTOP))
    assert (own.agent_id, own.state, own.photos, own.open_conflicts) == (
        "laptop", AgentState.OFFLINE, 0, ())
    with pytest.raises(errors.AuthError, match="needs the admin scope"):
        asyncio.run(world.service.status(LAPTOP, "desktop"))
    assert world.audit("GetSyncStatus") == [
        ("laptop", "desktop", "refused", "another agent needs the admin scope")]
    assert asyncio.run(world.service.status(ADMIN, "desktop")).agent_id == "desktop"
    with pytest.raises(errors.NotFound, match="no agent 'nobody'"):
        asyncio.run(world.service.status(ADMIN, "nobody"))


def test_an_agent_pauses_and_resumes_itself_but_not_another(world: World) -> None:
    asyncio.run(world.register(LAPTOP, DESKTOP))
    assert asyncio.run(world.service.pause(LAPTOP, "", True)) is True
    assert asyncio.run(world.service.pause(LAPTOP, "laptop", False)) is False
    with pytest.raises(errors.AuthError):
        asyncio.run(world.service.pause(LAPTOP, "desktop", True))
    desktop = world.catalog.get_agent("desktop")
    assert desktop is not None and not desktop.paused
    assert world.audit("PauseSyncing") == [
        ("laptop", "laptop", "ok", "paused by agent"),
        ("laptop", "laptop", "ok", "resumed by agent"),
        ("laptop", "desktop", "refused", "another agent needs the admin scope")]


def test_an_admins_pause_outlasts_the_agents_resume(world: World) -> None:
    asyncio.run(world.register(LAPTOP))
    assert asyncio.run(world.service.pause(ADMIN, "laptop", True)) is True
    assert asyncio.run(world.service.pause(LAPTOP, "", False)) is True  # still paused
    reply = asyncio.run(world.service.heartbeat(LAPTOP, AgentReport(AgentState.MONITORING)))
    assert reply.paused and asyncio.run(world.service.status(LAPTOP)).paused
    assert asyncio.run(world.service.pause(ADMIN, "laptop", False)) is False
    with pytest.raises(errors.NotFound):
        asyncio.run(world.service.pause(ADMIN, "nobody", True))
    assert world.audit("PauseSyncing") == [
        ("admin", "laptop", "ok", "paused by admin"),
        ("laptop", "laptop", "ok", "resumed by agent"),
        ("admin", "laptop", "ok", "resumed by admin"),
        ("admin", "nobody", "not_found", "")]


def _park_conflicts(world: World, names: list[str]) -> None:
    """One parked conflict per name: the laptop stores a first version, then sends another
    that did not start from it, under the manual policy."""

    async def send(content: bytes, name: str, policy: ConflictPolicy) -> None:
        stream = IngestStream(world.deps, "laptop")
        await stream.session.on_manifest(
            [ManifestEntry(sha_of(content), len(content), "photos", name)], policy)
        await stream.session.on_chunks([whole_chunk(content)])
        await stream.session.flush()
        await stream.session.close()
        assert stream.committed() == {sha_of(content)}

    async def scenario() -> None:
        await world.register(LAPTOP)
        for name in names:
            await send(f"first {name}".encode(), name, ConflictPolicy.AUTO)
            await send(f"second {name}".encode(), name, ConflictPolicy.MANUAL)

    asyncio.run(scenario())
    assert len(world.catalog.open_conflicts(None)) == len(names)


def test_resolving_needs_a_choice_and_stops_at_an_unknown_id(world: World) -> None:
    _park_conflicts(world, ["a.jpg", "b.jpg"])
    first, second = sorted(c.id for c in world.catalog.open_conflicts(None))
    with pytest.raises(errors.InvalidInput, match="which version to keep"):
        asyncio.run(world.service.resolve_conflicts(ADMIN, None, [first]))
    assert asyncio.run(world.service.resolve_conflicts(ADMIN, Keep.SERVER, [])) == []
    with pytest.raises(errors.NotFound, match="conflict 999"):
        asyncio.run(world.service.resolve_conflicts(ADMIN, Keep.INCOMING, [first, 999, second]))
    assert [c.id for c in world.catalog.open_conflicts(None)] == [second]  # first stays done
    assert world.audit("ResolveConflicts") == [
        ("admin", str(first), "ok", "keep_incoming"), ("admin", "999", "not_found", "")]
    status = asyncio.run(world.service.status(LAPTOP))
    assert [c.id for c in status.open_conflicts] == [second]


def test_resolving_all_settles_every_open_conflict(world: World) -> None:
    _park_conflicts(world, ["a.jpg", "b.jpg"])
    ids = sorted(c.id for c in world.catalog.open_conflicts(None))
    done = asyncio.run(world.service.resolve_conflicts(ADMIN, Keep.SERVER, [], all_open=True))
    assert sorted(done) == ids and world.catalog.open_conflicts(None) == []
    assert asyncio.run(world.service.resolve_conflicts(ADMIN, Keep.SERVER, [],
                                                       all_open=True)) == []
    with pytest.raises(errors.AuthError):
        asyncio.run(world.service.resolve_conflicts(LAPTOP, Keep.SERVER, [], all_open=True))


def test_events_are_filtered_by_who_is_watching(world: World) -> None:
    async def first_seen(caller: Caller, requested: str = "") -> str:
        feed = await world.service.events(caller, requested)
        reader = asyncio.ensure_future(anext(aiter(feed)))
        await asyncio.sleep(0)  # subscribed
        for agent in ("desktop", "laptop"):
            world.events.publish(ServerEvent("agent_state", agent))
        seen: ServerEvent = await asyncio.wait_for(reader, 5)
        return seen.agent_id

    assert asyncio.run(first_seen(LAPTOP)) == "laptop"
    assert asyncio.run(first_seen(ADMIN)) == "desktop"
    assert asyncio.run(first_seen(ADMIN, "laptop")) == "laptop"
    with pytest.raises(errors.AuthError):
        asyncio.run(world.service.events(LAPTOP, "desktop"))
    assert world.audit("StreamEvents") == [
        ("laptop", "desktop", "refused", "another agent needs the admin scope")]


def test_an_admin_sees_every_agents_conflicts_without_being_registered(world: World) -> None:
    """`photonic conflicts list`: an admin asking for every agent ("*") gets each agent's
    open conflicts even when it never registered itself; an agent asking so is refused."""
    _park_conflicts(world, ["a.jpg", "b.jpg"])
    overview = asyncio.run(world.service.status(ADMIN, "*"))
    assert overview.agent_id == "admin"
    assert sorted(c.rel_path for c in overview.open_conflicts) == ["a.jpg", "b.jpg"]
    with pytest.raises(errors.AuthError):
        asyncio.run(world.service.status(LAPTOP, "*"))
    with pytest.raises(errors.NotFound):
        asyncio.run(world.service.status(ADMIN))  # its own row: it has none
