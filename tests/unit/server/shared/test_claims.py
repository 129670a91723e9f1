"""Upload claims, on both backends: one stream at a time holds a content's claim across every
server sharing them; a release wakes the waiters of every server; and on PostgreSQL a claim
goes with its holder's session, so a SIGKILLed server's claims are free at once."""

from __future__ import annotations

import asyncio

from photonic.server.pg_db import connect
from tests.unit.server.shared.conftest import terminate_claim_holder, two_servers

SHA = "ab" * 32
OTHER = "cd" * 32


def test_a_claim_is_exclusive_across_servers_until_released(backend: str | None) -> None:
    """A claims; B (and A again) cannot; another content is free; once A releases, B can."""
    async def scenario() -> None:
        async with two_servers(backend) as (a, b):
            assert await a.claims.try_claim(SHA)
            assert a.claims.held(SHA)
            assert not await b.claims.try_claim(SHA)
            assert not await a.claims.try_claim(SHA)
            assert await b.claims.try_claim(OTHER)
            a.claims.release(SHA)
            assert not a.claims.held(SHA)
            await asyncio.wait_for(b.claims.wait_released(SHA), 30)
            assert await b.claims.try_claim(SHA)
            assert not await a.claims.try_claim(SHA)
            b.claims.release(SHA)
            b.claims.release(OTHER)

    asyncio.run(scenario())


def test_a_waiter_on_another_server_wakes_when_the_holder_releases(
        backend: str | None) -> None:
    """B waits for the claim A holds; A's release wakes it and B then claims it."""
    async def scenario() -> None:
        async with two_servers(backend) as (a, b):
            assert await a.claims.try_claim(SHA)
            waiting = asyncio.create_task(b.claims.wait_released(SHA))
            await asyncio.sleep(0)  # it is waiting (a task that finished early fails below)
            assert not waiting.done()
            a.claims.release(SHA)
            await asyncio.wait_for(waiting, 30)
            assert await b.claims.try_claim(SHA)
            b.claims.release(SHA)

    asyncio.run(scenario())


def test_a_cancelled_claim_leaves_nothing_held(backend: str | None) -> None:
    """A stream cut while its claim is being taken holds nothing afterwards, here or on the
    other server."""
    async def scenario() -> None:
        async with two_servers(backend) as (a, b):
            taking = asyncio.create_task(a.claims.try_claim(SHA))
            await asyncio.sleep(0)
            taking.cancel()
            [outcome] = await asyncio.gather(taking, return_exceptions=True)
            if backend is not None:  # in memory the claim is taken before the cancel lands
                assert isinstance(outcome, asyncio.CancelledError)
            elif outcome is True:
                a.claims.release(SHA)
            assert not a.claims.held(SHA)
            await asyncio.wait_for(b.claims.wait_released(SHA), 30)
            assert await b.claims.try_claim(SHA)
            b.claims.release(SHA)

    asyncio.run(scenario())


def test_a_dead_servers_claims_are_free_at_once(pg_url: str) -> None:
    """A holds a claim and its session ends as it does when the server is SIGKILLed: B,
    waiting, is let through without A ever releasing (no lease to run out)."""
    async def scenario() -> None:
        async with two_servers(pg_url) as (a, b):
            assert await a.claims.try_claim(SHA)
            assert not await b.claims.try_claim(SHA)
            waiting = asyncio.create_task(b.claims.wait_released(SHA))
            assert await asyncio.to_thread(terminate_claim_holder, pg_url, SHA) == 1
            await asyncio.wait_for(waiting, 30)
            assert await b.claims.try_claim(SHA)
            b.claims.release(SHA)

    asyncio.run(scenario())


def test_a_server_that_stops_frees_its_claims(pg_url: str) -> None:
    """A stopped server's session is closed: a claim it never released is free."""
    async def scenario() -> None:
        async with two_servers(pg_url) as (a, b):
            assert await a.claims.try_claim(SHA)
            await a.stop()
            await asyncio.wait_for(b.claims.wait_released(SHA), 30)
            assert await b.claims.try_claim(SHA)
            b.claims.release(SHA)

    asyncio.run(scenario())


def test_a_claim_released_then_taken_again_in_one_server_stays_exclusive(
        pg_url: str) -> None:
    """Release is queued to the database and a new claim of the same content follows it in
    order: after release-then-claim on A, B still cannot claim, and after A's second
    release B can (the session's lock count never drifts)."""
    async def scenario() -> None:
        async with two_servers(pg_url) as (a, b):
            for _ in range(3):
                assert await a.claims.try_claim(SHA)
                a.claims.release(SHA)
            assert await a.claims.try_claim(SHA)
            assert not await b.claims.try_claim(SHA)
            a.claims.release(SHA)
            await asyncio.wait_for(b.claims.wait_released(SHA), 30)
            assert await b.claims.try_claim(SHA)
            b.claims.release(SHA)

    asyncio.run(scenario())


def test_a_server_that_outlives_its_session_takes_its_claims_again(pg_url: str) -> None:
    """A's claims session is ended while A runs on (a database restart, a cut connection):
    A's next call opens a new session without failing and takes back the claim A's stream
    still holds, so B cannot claim it from then on; A's release frees it for B."""
    async def scenario() -> None:
        async with two_servers(pg_url) as (a, b):
            assert await a.claims.try_claim(SHA)
            assert await asyncio.to_thread(terminate_claim_holder, pg_url, SHA) == 1
            assert await a.claims.try_claim(OTHER)  # no error: a new session
            assert a.claims.held(SHA)
            assert not await b.claims.try_claim(SHA)
            a.claims.release(SHA)
            a.claims.release(OTHER)
            await asyncio.wait_for(b.claims.wait_released(SHA), 30)
            assert await b.claims.try_claim(SHA)
            b.claims.release(SHA)

    asyncio.run(scenario())


def test_claiming_many_at_once_takes_the_free_ones_only(backend: str | None) -> None:
    """A manifest's new contents are claimed in one call: the ones another server (or
    stream) holds are left out, the rest are taken, and each is released on its own."""
    shas = [f"{i:02x}" * 32 for i in range(1, 6)]

    async def scenario() -> None:
        async with two_servers(backend) as (a, b):
            assert await a.claims.try_claim(shas[1])
            assert await b.claims.try_claim_many([*shas, shas[0]]) == {
                shas[0], *shas[2:]}
            assert not await a.claims.try_claim_many(shas)
            for sha in (shas[0], *shas[2:]):
                b.claims.release(sha)
            a.claims.release(shas[1])
            for sha in shas:
                await asyncio.wait_for(a.claims.wait_released(sha), 30)
            assert await a.claims.try_claim_many(shas) == set(shas)
            for sha in shas:
                a.claims.release(sha)

    asyncio.run(scenario())


def test_releases_are_told_to_other_servers_a_hundred_contents_a_notification(
        pg_url: str) -> None:
    """Releasing 250 claims at once sends 3 notifications on the claims channel, which
    between them name every content once; a waiter on another server whose content is in
    the last one wakes."""
    import psycopg

    from photonic.server.shared import pg_claims

    contents = [f"{i:064x}" for i in range(250)]

    async def scenario() -> list[str]:
        listener = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
        await listener.execute(f"LISTEN {pg_claims.CHANNEL}")
        async with two_servers(pg_url) as (a, b):
            assert await a.claims.try_claim_many(contents) == set(contents)
            waiting = asyncio.create_task(b.claims.wait_released(contents[-1]))
            await asyncio.sleep(0)
            assert not waiting.done()
            for sha in contents:
                a.claims.release(sha)
            await asyncio.wait_for(waiting, 30)
            payloads: list[str] = []
            async for note in listener.notifies(timeout=2, stop_after=3):
                payloads.append(note.payload)
        await listener.close()
        return payloads

    payloads = asyncio.run(scenario())
    assert len(payloads) == 3
    named = [sha for payload in payloads for sha in payload.split()]
    assert sorted(named) == contents


def test_claims_take_one_lock_per_server_however_many_contents(pg_url: str) -> None:
    """20,000 contents claimed (a large manifest; six of 66,000 once filled the database's
    shared lock table) hold one advisory lock for the server's claims session, not one each:
    the claims are rows. The other server can claim none of them; after the releases it can
    claim them all."""
    shas = [f"{i:064x}" for i in range(20_000)]

    def advisory_locks() -> int:
        with connect(pg_url) as conn:
            row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                               "AND granted").fetchone()
        return int(row[0]) if row else 0

    async def scenario() -> None:
        async with two_servers(pg_url) as (a, b):
            before = await asyncio.to_thread(advisory_locks)
            assert await a.claims.try_claim_many(shas) == set(shas)
            assert await asyncio.to_thread(advisory_locks) <= before + 1
            assert not await b.claims.try_claim_many(shas[::1000])
            for sha in shas:
                a.claims.release(sha)
            for sha in shas[::1000]:
                await asyncio.wait_for(b.claims.wait_released(sha), 30)
            assert await b.claims.try_claim_many(shas) == set(shas)
            for sha in shas:
                b.claims.release(sha)

    asyncio.run(scenario())
