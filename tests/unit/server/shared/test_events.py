"""The event hub, on both backends: events published on either server reach the subscribers
and the numbered ring of both, in one order with one id sequence; a client resumes by id on
either; the ring is bounded; a waiter on one server wakes on the other's publish. On
PostgreSQL, the epoch is the database's, so ids stay valid across a server restart."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from photonic.server.events import EventHub, NumberedEvent, ServerEvent
from photonic.server.pg_db import connect
from photonic.server.shared.pg_events import PgEventHub
from photonic.server.shared_state import make_shared_state
from tests.support.postgres import TEMPLATE, PgCluster
from tests.unit.server.shared.conftest import two_servers

WAIT_S = 30.0


def _event(n: int, kind: str = "file_committed") -> ServerEvent:
    return ServerEvent(kind, "laptop", sha256=f"{n:064x}", watch_name="photos",
                       relative_path=f"IMG_{n}.jpg", size=n)


async def _ring_until(hub: EventHub, count: int, after: int = 0) -> list[NumberedEvent]:
    """The ring's events after `after` once count of them are there."""
    found: list[NumberedEvent] = []
    while len(found) < count:
        more = await asyncio.wait_for(hub.wait_since(found[-1].event_id if found else after,
                                                     WAIT_S), WAIT_S)
        found += more
    return found


async def _take(events: AsyncIterator[ServerEvent], count: int) -> list[ServerEvent]:
    """Subscribed from this task's first step (the caller's next await), not later."""
    return [await anext(events) for _ in range(count)]


def test_events_from_both_servers_reach_both_in_one_order(backend: str | None) -> None:
    """Subscribers on A and B and both rings see A's and B's events, interleaved, as one
    sequence with the same ids; ring-only events reach the rings, not the subscribers."""
    async def scenario() -> None:
        async with two_servers(backend) as (a, b):
            on_a, on_b = a.events.subscribe(), b.events.subscribe()
            reading = [asyncio.create_task(_take(on_a, 6)), asyncio.create_task(_take(on_b, 6))]
            await asyncio.sleep(0)  # both subscribed before the first publish
            for n in range(6):
                (a if n % 2 else b).events.publish(_event(n))
                a.events.publish(_event(100 + n, "job_progress"), ring_only=True)
            got_a, got_b = await asyncio.wait_for(asyncio.gather(*reading), WAIT_S)
            ring_a, ring_b = await _ring_until(a.events, 12), await _ring_until(b.events, 12)
            assert got_a == got_b
            assert sorted(e.size for e in got_a) == list(range(6))
            assert ring_a == ring_b
            ids = [n.event_id for n in ring_a]
            assert ids == sorted(set(ids))
            assert [n.event for n in ring_a if n.event.kind == "file_committed"] == got_a
            assert a.events.epoch == b.events.epoch

    asyncio.run(scenario())


def test_a_client_resumes_by_id_on_either_server(backend: str | None) -> None:
    """The ids one server gave are the ids of the other: after the third event, both answer
    the same remaining events; a resume point within the epoch is not a reset."""
    async def scenario() -> None:
        async with two_servers(backend) as (a, b):
            for n in range(5):
                a.events.publish(_event(n))
            first = await _ring_until(a.events, 5)
            await _ring_until(b.events, 5)
            third = first[2].event_id
            assert a.events.since(third) == b.events.since(third) == first[3:]
            assert b.events.resume_point(third, a.events.epoch) == (third, False)
            assert b.events.resume_point(third, "another-epoch") == (0, True)

    asyncio.run(scenario())


def test_the_ring_is_bounded(backend: str | None) -> None:
    """Beyond the ring's size the oldest events go: a client that fell behind sees only the
    newest RING events (a gap it can see by the ids), here and in the shared table."""
    async def scenario() -> None:
        if backend is None:
            from photonic.server.events import LocalEventHub
            hub: EventHub = LocalEventHub(ring_size=5)
            for n in range(12):
                hub.publish(_event(n))
        else:
            pg = PgEventHub(backend, ring_size=5)
            await pg.start()
            hub = pg
            for n in range(12):
                hub.publish(_event(n))
            await _ring_until(hub, 5, after=7)
            await pg.stop()
            with connect(backend) as conn:
                row = conn.execute("SELECT count(*) FROM server_events").fetchone()
            assert row is not None and row[0] <= 5
        assert [n.event.size for n in hub.since(0)] == [7, 8, 9, 10, 11]

    asyncio.run(scenario())


def test_a_waiter_wakes_on_the_other_servers_publish(backend: str | None) -> None:
    """A long-poll on B waiting after the last id returns A's event when A publishes it."""
    async def scenario() -> None:
        async with two_servers(backend) as (a, b):
            waiting = asyncio.create_task(b.events.wait_since(b.events.last_id, WAIT_S))
            await asyncio.sleep(0)
            assert not waiting.done()
            published = _event(7)
            a.events.publish(published)
            [got] = await waiting
            assert got.event == published

    asyncio.run(scenario())


def test_ids_and_epoch_survive_a_server_restart(pg_url: str) -> None:
    """A server that stops and starts again on the same database keeps the epoch, has the
    ring back, and numbers on after the last id: a client's resume point stays valid."""
    async def scenario() -> tuple[str, list[NumberedEvent]]:
        state = make_shared_state(pg_url)
        await state.start()
        for n in range(3):
            state.events.publish(_event(n))
        ring = await _ring_until(state.events, 3)
        await state.stop()
        return state.events.epoch, ring

    async def after_restart(epoch: str, before: list[NumberedEvent]) -> None:
        state = make_shared_state(pg_url)
        await state.start()
        try:
            assert state.events.epoch == epoch
            assert state.events.since(0) == before
            assert state.events.resume_point(before[-1].event_id, epoch) == (
                before[-1].event_id, False)
            state.events.publish(_event(9))
            [new] = await _ring_until(state.events, 1, after=before[-1].event_id)
            assert new.event_id > before[-1].event_id
        finally:
            await state.stop()

    epoch, before = asyncio.run(scenario())
    asyncio.run(after_restart(epoch, before))


def test_a_fresh_database_has_another_epoch(pg_url: str, pg_cluster: PgCluster) -> None:
    """Two databases (one made afresh after the other) never share an epoch: ids from the
    old one are read as another numbering, not waited for."""
    name = f"fresh_{os.getpid()}"
    pg_cluster.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    try:
        assert PgEventHub(pg_url).epoch != PgEventHub(pg_cluster.url(name)).epoch
    finally:
        pg_cluster.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_publishing_never_waits_on_the_database(pg_url: str) -> None:
    """While another session holds the insert-order lock (the database is slow to take
    events), 200 publishes on the event loop return at once and nothing is seen yet; once
    the lock is free, all 200 arrive, in publish order, numbered in one run."""
    from photonic.server.shared.pg_keys import EVENTS_ORDER

    async def scenario() -> None:
        async with two_servers(pg_url) as (a, _b):
            blocker = await asyncio.to_thread(connect, pg_url)
            try:
                await asyncio.to_thread(blocker.execute, "BEGIN")
                await asyncio.to_thread(blocker.execute, "SELECT pg_advisory_xact_lock(%s)",
                                        (EVENTS_ORDER,))
                before = a.events.last_id
                for n in range(200):
                    a.events.publish(_event(n))
                assert a.events.since(before) == []
                await asyncio.to_thread(blocker.execute, "COMMIT")
            finally:
                await asyncio.to_thread(blocker.close)
            got = await _ring_until(a.events, 200, after=before)
            assert [n.event.size for n in got] == list(range(200))

    asyncio.run(scenario())
