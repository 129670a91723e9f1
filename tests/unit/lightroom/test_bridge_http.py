"""The bridge over real HTTP on 127.0.0.1:0: who may call, the handshake, registering,
ping/pong, long-polls and the bounded queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from photonic.lightroom.bridge import LightroomBridge
from photonic.lightroom.routes import is_loopback_peer
from tests.support.bridge_client import BridgeCallError
from tests.unit.lightroom.world import World, bridge_world, jobs_held


def run(tmp_path: Path, scenario: Callable[[World], Awaitable[None]]) -> None:
    async def main() -> None:
        async with bridge_world(tmp_path) as world:
            await scenario(world)
    asyncio.run(main())


def test_secret_required(tmp_path: Path) -> None:
    """Every call without the secret, or with a wrong one, is refused 401 in JSON."""
    async def scenario(world: World) -> None:
        for secret in (None, "0" * 64):
            client = world.client(secret)
            for method, path in (("POST", "/bridge/handshake"), ("GET", "/bridge/status"),
                                 ("GET", "/bridge/nowhere")):
                status, body = await client.call(method, path, {"protocol_version": 1})
                assert status == 401, (secret, path)
                assert body["type"] == "error" and "X-Photonic-Bridge-Secret" in body["error"]
    run(tmp_path, scenario)


def test_loopback_only() -> None:
    """Only loopback peers pass the peer check; the bridge refuses to bind anything else."""
    for peer in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"):
        assert is_loopback_peer(peer), peer
    outside: tuple[str | None, ...] = ("192.168.1.5", "::ffff:10.0.0.1", "fe80::1%eth0", "",
                                       None, "host")
    for remote in outside:
        assert not is_loopback_peer(remote), remote
    for host in ("0.0.0.0", "192.168.1.5", "::", "localhost"):
        with pytest.raises(ValueError, match="loopback"):
            LightroomBridge("s", host=host, jobs_dir=Path("/nonexistent"))


def test_handshake(tmp_path: Path) -> None:
    """A handshake answers connection_established with a client id and the server time (also
    queued for the first poll); another protocol version is refused naming [1]."""
    async def scenario(world: World) -> None:
        client = world.client()
        before = int(time.time() * 1000)
        reply = await client.handshake()
        assert reply["type"] == "connection_established" and reply["protocol_version"] == 1
        assert isinstance(reply["server_time"], int) and reply["server_time"] >= before
        assert await client.poll() == [reply]
        with pytest.raises(BridgeCallError) as refused:
            await world.client().handshake(protocol_version=2)
        assert refused.value.status == 400 and "[1]" in refused.value.error
    run(tmp_path, scenario)


def test_errors_are_json(tmp_path: Path) -> None:
    """Unknown routes, unknown clients, bad JSON and oversized bodies answer JSON errors."""
    async def scenario(world: World) -> None:
        client = world.client()
        assert (await client.call("GET", "/bridge/nowhere"))[0] == 404
        status, body = await client.call("POST", "/bridge/send", data=b"{not json")
        assert status == 400 and "not JSON" in str(body["error"])
        status, body = await client.call("POST", "/bridge/send", data=b"x" * 70_000)
        assert status == 413 and body["type"] == "error"
        client.client_id = "nobody"
        with pytest.raises(BridgeCallError) as unknown:
            await client.ping()
        assert unknown.value.status == 404 and "handshake again" in unknown.value.error
    run(tmp_path, scenario)


def test_register_sets_version_and_notifies(tmp_path: Path) -> None:
    """lightroom_version() appears once a client has registered and subscribed to jobs, is
    the newest of several, and goes with its clients; on_change fires at each change."""
    async def scenario(world: World) -> None:
        changes: list[str | None] = []
        world.bridge.on_change(lambda: changes.append(world.bridge.lightroom_version()))
        client = world.client()
        await client.handshake()
        await client.register("12.5")
        assert world.bridge.lightroom_version() is None
        await client.subscribe("jobs")
        assert world.bridge.lightroom_version() == "12.5"
        newer = await world.plugin("13.2", "Second")
        assert world.bridge.lightroom_version() == "13.2"
        await newer.disconnect()
        await client.unsubscribe("jobs")
        assert changes == ["12.5", "13.2", "12.5", None]
        status = await client.status()
        assert status["protocol_versions"] == [1]
        assert status["clients"] == [{
            "client_id": client.client_id, "client_type": "lightroom", "registered": True,
            "lightroom_version": "12.5", "catalog": "Test Catalog", "queued": 1,
            "dropped": 0, "jobs": 0}]
    run(tmp_path, scenario)


def test_ping_pong_and_long_poll(tmp_path: Path) -> None:
    """A ping queues a pong that a poll returns at once; a poll with nothing waiting answers
    empty after its timeout; a poll waiting when a message comes returns it."""
    async def scenario(world: World) -> None:
        client = await world.plugin()
        await client.ping()
        started = time.monotonic()
        [pong] = await client.poll(30)
        assert pong["type"] == "pong" and isinstance(pong["server_time"], int)
        assert time.monotonic() - started < 5
        started = time.monotonic()
        assert await client.poll(0.2) == []
        assert time.monotonic() - started >= 0.2
        waiting = asyncio.create_task(client.poll(30))
        other = world.client()  # the plugin's second connection, as LrHttp uses
        other.client_id = client.client_id
        await other.ping()
        assert [m["type"] for m in await waiting] == ["pong"]
    run(tmp_path, scenario)


def test_full_queue_keeps_100_and_still_delivers_a_job(tmp_path: Path) -> None:
    """150 pongs to a client that never polls leave 100 and count 50 dropped; a job sent to
    it then is still delivered (displacing one more pong), after a dropped notice."""
    async def scenario(world: World) -> None:
        client = await world.plugin()
        for _ in range(150):
            await client.ping()
        [row] = (await client.status())["clients"]
        assert (row["queued"], row["dropped"]) == (100, 50)
        job = world.run_job()
        await jobs_held(client)
        messages = await client.poll(5)
        assert messages[0] == {"type": "dropped", "count": 51}
        assert len(messages) == 101 and [m["type"] for m in messages[1:100]] == ["pong"] * 99
        assert messages[-1]["type"] == "job_assigned"
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
    run(tmp_path, scenario)
