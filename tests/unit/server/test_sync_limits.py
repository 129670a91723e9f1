"""Tests for photonic.server.sync_limits: stream slots per agent, and memory that every way a
file can end gives back, so a long-running server never refuses streams for memory it lent."""

from __future__ import annotations

import asyncio

import pytest

from photonic.errors import LimitExceeded
from photonic.models import CommittedFile, Decision, FailedFile, FileDecision
from photonic.server.sync_limits import (
    STREAM_BASE_BYTES,
    IdleDeadline,
    Refusal,
    StreamBudget,
    SyncBudgets,
    SyncLimits,
    manifest_cost_bytes,
)

MIB = 1 << 20


def _limits(**overrides: float) -> SyncLimits:
    values: dict[str, float] = {
        "max_concurrent_syncs": 16, "max_syncs_per_agent": 4,
        "max_stream_memory_bytes": 64 * MIB, "max_sync_memory_bytes": 512 * MIB,
        "sync_idle_timeout_s": 0.05}
    values.update(overrides)
    return SyncLimits(SyncBudgets(**values))  # type: ignore[arg-type]


def _decision(sha: str, action: Decision) -> FileDecision:
    return FileDecision(sha256=sha, watch_name="w", relative_path=f"{sha}.jpg", action=action)


def test_one_agent_gets_at_most_its_share_of_the_slots() -> None:
    """The fifth stream of one agent is refused naming max_syncs_per_agent while another
    agent still opens one; closing a stream frees its slot."""
    limits = _limits()
    streams = [limits.open_stream("laptop") for _ in range(4)]
    refused = limits.open_stream("laptop")
    assert isinstance(refused, Refusal) and refused.budget == "max_syncs_per_agent"
    assert "limits.max_syncs_per_agent=4" in refused.message
    assert isinstance(limits.open_stream("desktop"), StreamBudget)
    first = streams[0]
    assert isinstance(first, StreamBudget)
    first.close()
    assert isinstance(limits.open_stream("laptop"), StreamBudget)


def test_a_stream_is_refused_when_the_pool_has_no_room_for_its_base() -> None:
    """With room for two streams' base memory, the third is refused naming max_sync_memory,
    and nothing it tried to take stays taken."""
    limits = _limits(max_sync_memory_bytes=2 * STREAM_BASE_BYTES + MIB)
    assert isinstance(limits.open_stream("a"), StreamBudget)
    assert isinstance(limits.open_stream("b"), StreamBudget)
    refused = limits.open_stream("c")
    assert isinstance(refused, Refusal) and refused.budget == "max_sync_memory"
    assert limits.pool.held_bytes == 2 * STREAM_BASE_BYTES
    assert isinstance(limits.open_stream("c"), Refusal)  # its slot was given back too


def test_every_final_answer_gives_back_what_its_entry_was_charged() -> None:
    """Entries answered HAVE, REJECT, COMMITTED or FAILED, or aborted by the agent, give back
    their memory; SEND does not (the bytes are still to come); the pool ends where it began."""
    async def run() -> None:
        limits = _limits()
        stream = limits.open_stream("laptop")
        assert isinstance(stream, StreamBudget)
        shas = [f"{i:064x}" for i in range(6)]
        await stream.pending.offer([*shas, shas[3]], wire_bytes=700)
        assert stream.memory.held_bytes == STREAM_BASE_BYTES + manifest_cost_bytes(7, 700)
        for sha in shas:
            stream.pending.answered(_decision(sha, Decision.SEND))
        assert stream.memory.held_bytes == STREAM_BASE_BYTES + manifest_cost_bytes(7, 700)
        stream.pending.answered(_decision(shas[0], Decision.HAVE))
        stream.pending.answered(_decision(shas[1], Decision.REJECT))
        stream.pending.answered(CommittedFile(sha256=shas[2], watch_name="w",
                                              relative_path="x", library_path="x",
                                              version=1, conflict=False))
        stream.pending.answered(FailedFile(shas[3], "bad bytes", True))  # both of its entries
        stream.pending.dropped(shas[4])
        stream.pending.answered(_decision(shas[5], Decision.HAVE))
        assert stream.memory.held_bytes == STREAM_BASE_BYTES
        stream.close()
        assert limits.pool.held_bytes == 0
    asyncio.run(run())


def test_a_stream_over_its_memory_is_refused_naming_the_budget() -> None:
    """Offering files past max_stream_memory raises LimitExceeded naming the key and what to
    do; what was already held stays accounted, and close() returns all of it."""
    async def run() -> None:
        limits = _limits(max_stream_memory_bytes=32 * MIB)
        stream = limits.open_stream("laptop")
        assert isinstance(stream, StreamBudget)
        with pytest.raises(LimitExceeded, match=r"limits\.max_stream_memory=33554432; send"):
            await stream.pending.offer([f"{i:064x}" for i in range(10_000)], 1_000_000)
        stream.close()
        assert limits.pool.held_bytes == 0
    asyncio.run(run())


def test_a_stream_waits_for_room_in_the_pool_then_gives_up_naming_the_budget() -> None:
    """When other streams hold the pool, an offer waits until one gives memory back (slowed,
    not refused); when none does within the wait, it is refused naming max_sync_memory."""
    async def run() -> None:
        limits = _limits(max_sync_memory_bytes=2 * STREAM_BASE_BYTES + MIB)
        a, b = limits.open_stream("a"), limits.open_stream("b")
        assert isinstance(a, StreamBudget) and isinstance(b, StreamBudget)
        await a.pending.offer(["a" * 64], wire_bytes=MIB // 8)  # takes the last MiB
        waiting = asyncio.create_task(b.pending.offer(["b" * 64], wire_bytes=MIB // 8))
        await asyncio.sleep(0)
        assert not waiting.done()
        a.pending.dropped("a" * 64)
        await asyncio.wait_for(waiting, 1)
        with pytest.raises(LimitExceeded, match=r"limits\.max_sync_memory"):
            await a.pending.offer(["c" * 64], wire_bytes=MIB // 8)
    asyncio.run(run())


def test_the_idle_clock_stops_while_the_server_holds_the_turn() -> None:
    """The deadline runs while the client is silent, restarts while the server works for it
    (a commit in flight, a wait for memory), and runs again when replies go untaken."""
    now = [0.0]
    idle = IdleDeadline(10.0, clock=lambda: now[0])
    now[0] = 4.0
    assert idle.due_in(server_busy=False) == pytest.approx(6.0)
    now[0] = 30.0
    assert idle.due_in(server_busy=True) == pytest.approx(10.0)
    with idle.servers_turn():
        now[0] = 100.0
        assert idle.due_in(server_busy=False) == pytest.approx(10.0)
    idle.sending = True
    now[0] = 111.0
    assert idle.due_in(server_busy=True) <= 0
    assert "limits.sync_idle_timeout" in idle.message()
