"""The resource budgets of SyncBatch streams: streams in total and per agent, memory per stream
and in total, and an idle deadline. A stream over a budget is slowed or refused with a message
naming the budget (RESOURCE_EXHAUSTED); the process itself is never what gives way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from photonic.errors import LimitExceeded
from photonic.grpc_options import MAX_CHUNK_BYTES, MAX_MESSAGE_BYTES
from photonic.media.chunks import decompression_bytes
from photonic.models import CommittedFile, Decision, FailedFile, FileDecision

STREAM_BASE_BYTES = MAX_MESSAGE_BYTES + decompression_bytes(MAX_CHUNK_BYTES)
"""Held by every open stream from its start: the message being handled and the decoder and
output buffers of its largest chunk. Chunks therefore never wait for memory, so a stream
always makes progress on the files it was asked for (and frees what they hold)."""

ENTRY_BASE_BYTES = 2048
"""What one offered file costs while it waits for its bytes, beyond its strings: 66,000
waiting entries of about 100 wire bytes each raised a server's peak RSS by 136 MB."""
ENTRY_BYTES_PER_WIRE_BYTE = 4
"""An entry's strings are held about four times over: protobuf, domain type, path, reply."""

@dataclass(frozen=True)
class SyncBudgets:
    """The budgets the server holds SyncBatch streams to (server.yaml `limits:`)."""

    max_concurrent_syncs: int
    max_syncs_per_agent: int
    max_stream_memory_bytes: int
    max_sync_memory_bytes: int
    sync_idle_timeout_s: float


@dataclass(frozen=True)
class Refusal:
    """Why a stream was not opened: the budget's key (a metric label) and the message."""

    budget: str
    message: str


def manifest_cost_bytes(entries: int, wire_bytes: int) -> int:
    """The memory a manifest's entries are charged while they wait for their answers."""
    return entries * ENTRY_BASE_BYTES + wire_bytes * ENTRY_BYTES_PER_WIRE_BYTE


class StreamSlots:
    """How many streams are open, in total and per agent, so that one certificate cannot
    take every slot."""

    def __init__(self, total: int, per_agent: int) -> None:
        self._total = total
        self._per_agent = per_agent
        self._open: dict[str, int] = {}
        self._count = 0

    def take(self, agent_id: str) -> Refusal | None:
        """Takes a slot for agent_id, or says which budget refuses it (nothing is taken)."""
        if self._count >= self._total:
            return Refusal("max_concurrent_syncs", f"the server is at max_concurrent_syncs="
                           f"{self._total}; retry shortly")
        held = self._open.get(agent_id, 0)
        if held >= self._per_agent:
            return Refusal("max_syncs_per_agent", f"{agent_id} already has {held} sync streams "
                           f"open, the most limits.max_syncs_per_agent={self._per_agent} "
                           "allows; finish one before opening another (or lower the agent's "
                           "network.parallel_transfers)")
        self._open[agent_id] = held + 1
        self._count += 1
        return None

    def give_back(self, agent_id: str) -> None:
        held = self._open.get(agent_id, 0)
        if held <= 1:
            self._open.pop(agent_id, None)
        else:
            self._open[agent_id] = held - 1
        self._count -= 1


class MemoryPool:
    """The bytes every sync stream together may hold (limits.max_sync_memory)."""

    def __init__(self, total_bytes: int) -> None:
        self.total_bytes = total_bytes
        self.held_bytes = 0
        self._waiters: set[asyncio.Future[None]] = set()

    def try_take(self, n: int) -> bool:
        if self.held_bytes + n > self.total_bytes:
            return False
        self.held_bytes += n
        return True

    async def take(self, n: int, wait_s: float) -> bool:
        """Takes n bytes, waiting up to wait_s for other streams to free them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not self.try_take(n):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            freed: asyncio.Future[None] = loop.create_future()
            self._waiters.add(freed)
            try:
                await asyncio.wait_for(freed, remaining)
            except TimeoutError:
                pass  # the loop tries once more, then gives up
            finally:
                self._waiters.discard(freed)
        return True

    def give_back(self, n: int) -> None:
        self.held_bytes -= n
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)


class StreamMemory:
    """One stream's share of the pool, capped at limits.max_stream_memory. Every byte taken is
    given back when the stream closes, however it ends."""

    def __init__(self, pool: MemoryPool, limit_bytes: int, wait_s: float) -> None:
        self._pool = pool
        self._limit = limit_bytes
        self._wait_s = wait_s
        self.held_bytes = 0

    def open(self) -> Refusal | None:
        """Takes the stream's base, or says which budget refuses the stream."""
        if not self._pool.try_take(STREAM_BASE_BYTES):
            return Refusal("max_sync_memory", f"the server's memory for sync streams (limits."
                           f"max_sync_memory={self._pool.total_bytes} bytes) is taken by other "
                           "streams; retry shortly")
        self.held_bytes = STREAM_BASE_BYTES
        return None

    async def take(self, n: int, what: str) -> None:
        """Takes n more bytes for `what`, waiting a while for other streams to free some;
        raises LimitExceeded naming the budget that refuses it."""
        if self.held_bytes + n > self._limit:
            raise LimitExceeded(
                f"{what} would hold {self.held_bytes + n} bytes on this stream, over "
                f"limits.max_stream_memory={self._limit}; send the files already asked for "
                "before offering more, or offer fewer files per stream")
        if not await self._pool.take(n, self._wait_s):
            raise LimitExceeded(
                f"the server's memory for sync streams (limits.max_sync_memory="
                f"{self._pool.total_bytes} bytes) stayed taken by other streams for "
                f"{self._wait_s:g}s; retry shortly")
        self.held_bytes += n

    def give_back(self, n: int) -> None:
        n = min(n, self.held_bytes)
        self.held_bytes -= n
        self._pool.give_back(n)

    def close(self) -> None:
        self.give_back(self.held_bytes)


class PendingEntries:
    """The manifest entries of one stream that have no final answer yet (HAVE, REJECT,
    COMMITTED or FAILED), each charged to the stream's memory until it has."""

    def __init__(self, memory: StreamMemory) -> None:
        self._memory = memory
        self._costs: dict[str, list[int]] = {}

    async def offer(self, shas: list[str], wire_bytes: int) -> None:
        """Charges a manifest's entries before they are converted; raises LimitExceeded."""
        if not shas:
            return
        total = manifest_cost_bytes(len(shas), wire_bytes)
        await self._memory.take(total, f"{len(shas)} more offered files")
        each, extra = divmod(total, len(shas))
        for i, sha in enumerate(shas):
            self._costs.setdefault(sha, []).append(each + (extra if i == 0 else 0))

    def answered(self, reply: FileDecision | CommittedFile | FailedFile) -> None:
        """Frees what the entries a reply answers for good were charged (a SEND, or any
        other request to the agent, is not an answer: the entry still waits)."""
        if isinstance(reply, FailedFile):
            self.dropped(reply.sha256)
        elif isinstance(reply, CommittedFile) or reply.action in (Decision.HAVE,
                                                                   Decision.REJECT):
            costs = self._costs.get(reply.sha256)
            if costs:
                self._memory.give_back(costs.pop())
                if not costs:
                    del self._costs[reply.sha256]

    def dropped(self, sha256: str) -> None:
        """Every entry for this content is done with (failed, or the agent gave up on it)."""
        self._memory.give_back(sum(self._costs.pop(sha256, [])))


class IdleDeadline:
    """When a stream's client last made progress: sent a message or took a reply. The clock
    does not run while the server holds the turn (committing, or waiting for memory)."""

    def __init__(self, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self._clock = clock
        self._last = clock()
        self._server_turns = 0
        self.sending = False  # a reply is waiting for the client to take it

    def progressed(self) -> None:
        self._last = self._clock()

    @contextmanager
    def servers_turn(self) -> Iterator[None]:
        self._server_turns += 1
        try:
            yield
        finally:
            self._server_turns -= 1
            self.progressed()

    def due_in(self, server_busy: bool) -> float:
        """Seconds until the client has been idle for idle_s (<= 0: it has); restarts the
        clock while the server holds the turn."""
        if not self.sending and (self._server_turns or server_busy):
            self.progressed()
        return self._last + self.idle_s - self._clock()

    def message(self) -> str:
        return (f"the stream made no progress for {self.idle_s:g}s "
                "(limits.sync_idle_timeout); it was closed to free its slot: open a new "
                "stream when there is something to send")

    async def expired(self, server_busy: Callable[[], bool]) -> None:
        """Returns once the client has been idle for idle_s."""
        while (wait := self.due_in(server_busy())) > 0:
            await asyncio.sleep(wait)


class StreamBudget:
    """What one open stream holds of the server's budgets; close() gives all of it back."""

    def __init__(self, limits: SyncLimits, agent_id: str, memory: StreamMemory) -> None:
        self._limits = limits
        self._agent = agent_id
        self.memory = memory
        self.pending = PendingEntries(memory)
        self.idle = IdleDeadline(limits.budgets.sync_idle_timeout_s)
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.memory.close()
            self._limits.slots.give_back(self._agent)


class SyncLimits:
    """The server-wide side of the budgets: stream slots and the memory pool."""

    def __init__(self, budgets: SyncBudgets) -> None:
        self.budgets = budgets
        self.slots = StreamSlots(budgets.max_concurrent_syncs, budgets.max_syncs_per_agent)
        self.pool = MemoryPool(budgets.max_sync_memory_bytes)

    def open_stream(self, agent_id: str) -> StreamBudget | Refusal:
        """A stream's slot and base memory, or the budget that refuses it (nothing held)."""
        if refused := self.slots.take(agent_id):
            return refused
        memory = StreamMemory(self.pool, self.budgets.max_stream_memory_bytes,
                              wait_s=self.budgets.sync_idle_timeout_s)
        if refused := memory.open():
            self.slots.give_back(agent_id)
            return refused
        return StreamBudget(self, agent_id, memory)
