"""The client registry: bounded queues, long-poll waiters, stale clients, who takes a job."""

from __future__ import annotations

import asyncio

import pytest

from photonic.errors import LimitExceeded, NotFound
from photonic.lightroom.clients import Client, ClientRegistry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _job(n: int) -> dict[str, object]:
    return {"type": "job_assigned", "job_id": f"j{n}", "attempt": 1}


def test_full_queue_drops_oldest_and_counts() -> None:
    """150 system messages leave the newest 100, after a dropped notice counting 50."""
    client = ClientRegistry(queue_limit=100).add("lightroom")
    for n in range(150):
        client.push({"type": "system_status", "n": n})
    assert (client.queued, client.dropped_total) == (100, 50)
    taken = client.take()
    assert taken[0] == {"type": "dropped", "count": 50}
    assert [m["n"] for m in taken[1:]] == list(range(50, 150))
    assert client.take() == []
    assert client.dropped_total == 50


def test_job_notices_are_never_dropped() -> None:
    """A job pushed into a full queue displaces the oldest other message; a queue full of
    jobs takes one more job past its limit and drops the other message instead."""
    client = ClientRegistry(queue_limit=3).add("lightroom")
    client.push(_job(0))
    client.push({"type": "pong", "n": 1})
    client.push({"type": "pong", "n": 2})
    client.push(_job(3))
    client.push(_job(4))
    client.push(_job(5))
    assert client.queued == 4
    client.push({"type": "pong", "n": 6})
    taken = client.take()
    assert taken[0] == {"type": "dropped", "count": 3}
    assert [m["job_id"] for m in taken[1:]] == ["j0", "j3", "j4", "j5"]


def test_withdraw_takes_back_an_undelivered_job() -> None:
    """A job_assigned still queued can be withdrawn; once taken, it cannot."""
    client = ClientRegistry().add("lightroom")
    client.push(_job(1))
    assert client.withdraw(("j1", 1))
    client.push(_job(2))
    client.take()
    assert not client.withdraw(("j2", 1))


def test_poll_waits_wakes_and_is_replaced() -> None:
    """A wait returns when a message comes; a newer wait replaces an older one, which then
    returns False so the newer one gets the messages; a wait with nothing times out."""
    async def scenario() -> None:
        client = ClientRegistry().add("lightroom")
        assert await client.wait(0.01)  # timed out, may take (nothing)
        first = asyncio.create_task(client.wait(30))
        await asyncio.sleep(0)
        assert client.polling
        second = asyncio.create_task(client.wait(30))
        assert await first is False
        client.push({"type": "pong"})
        assert await second is True
        assert not client.polling
        assert await client.wait(30)  # returns at once: a message waits

    asyncio.run(scenario())


def test_stale_clients_and_liveness() -> None:
    """A client silent past client_timeout_s is stale; a call, or a poll in progress,
    keeps it alive; an unknown id is NotFound."""
    async def scenario() -> None:
        clock = Clock()
        registry = ClientRegistry(client_timeout_s=300, clock=clock)
        quiet, talking, polling = (registry.add("lightroom") for _ in range(3))
        clock.now += 200
        registry.get(talking.client_id)
        waiter = asyncio.create_task(polling.wait(600))
        await asyncio.sleep(0)
        clock.now += 150
        assert registry.stale() == [quiet]
        registry.remove(quiet.client_id)
        with pytest.raises(NotFound, match="handshake again"):
            registry.get(quiet.client_id)
        registry.remove(polling.client_id)
        await waiter

    asyncio.run(scenario())


def _taker(registry: ClientRegistry, version: str) -> Client:
    client = registry.add("lightroom")
    client.registered, client.lightroom_version = True, version
    client.subscriptions.add("jobs")
    return client


def test_job_taker_and_version() -> None:
    """Only registered clients subscribed to jobs take jobs and set the version (the newest,
    compared as numbers); the one holding the fewest jobs takes the next."""
    clock = Clock()
    registry = ClientRegistry(clock=clock)
    registry.add("lightroom")
    assert registry.job_taker() is None and registry.lightroom_version() is None
    old = _taker(registry, "9.4")
    clock.now += 1
    new = _taker(registry, "13.2")
    assert registry.lightroom_version() == "13.2"
    assert registry.job_taker() is new
    new.jobs.add(("j", 1))
    assert registry.job_taker() is old


def test_client_limit() -> None:
    """Handshakes beyond max_clients are refused until one goes."""
    registry = ClientRegistry(max_clients=2)
    first = registry.add("lightroom")
    registry.add("lightroom")
    with pytest.raises(LimitExceeded):
        registry.add("lightroom")
    registry.remove(first.client_id)
    registry.add("lightroom")
