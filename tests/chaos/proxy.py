"""A TCP proxy on loopback that cuts, stalls and throttles connections at seeded random points,
placed between an agent and the server to prove the agent recovers on its own."""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass, field
from enum import StrEnum

READ_BYTES = 16 * 1024


class Fault(StrEnum):
    CUT = "cut"            # both directions reset: the connection is gone
    STALL = "stall"        # nothing moves for a while, then traffic resumes
    THROTTLE = "throttle"  # the next few hundred KB crawl


@dataclass
class FaultPlan:
    """How often and how hard the proxy misbehaves; budget bounds the total number of faults,
    after which every connection is clean so the scenario can finish."""

    budget: int
    min_gap_bytes: int = 32 * 1024
    max_gap_bytes: int = 400 * 1024
    stall_s: tuple[float, float] = (0.3, 1.5)
    throttle_bytes_per_s: int = 300 * 1024
    kinds: tuple[Fault, ...] = (Fault.CUT, Fault.STALL, Fault.THROTTLE)
    injected: dict[Fault, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.injected.values())


@dataclass
class _Connection:
    next_fault_at: int
    moved_bytes: int = 0
    throttled_until_bytes: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class ChaosProxy:
    """Listens on 127.0.0.1:<port> and forwards to target_port, injecting faults from plan.

    Runs its own event loop in a thread, so tests that drive subprocesses can use it as is."""

    def __init__(self, target_port: int, plan: FaultPlan, seed: int) -> None:
        self._target = target_port
        self.plan = plan
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0

    def start(self) -> ChaosProxy:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def stop(self) -> None:
        """Closes the listener and every connection's pumps before the loop stops, so no
        coroutine is left to be finalised after its loop is gone."""
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            current = asyncio.current_task()
            pumps = [t for t in asyncio.all_tasks() if t is not current]
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def _gap(self) -> int:
        with self._lock:
            return self._rng.randint(self.plan.min_gap_bytes, self.plan.max_gap_bytes)

    def _draw(self) -> tuple[Fault, float] | None:
        """The next fault to inject, or None once the budget is spent."""
        with self._lock:
            if self.plan.total >= self.plan.budget:
                return None
            kind = self._rng.choice(self.plan.kinds)
            self.plan.injected[kind] = self.plan.injected.get(kind, 0) + 1
            return kind, self._rng.uniform(*self.plan.stall_s)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            client_w.close()
            return
        conn = _Connection(next_fault_at=self._gap(), writers=[client_w, server_w])
        await asyncio.gather(self._pump(client_r, server_w, conn),
                             self._pump(server_r, client_w, conn), return_exceptions=True)
        for w in conn.writers:
            w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    conn: _Connection) -> None:
        try:
            while data := await reader.read(READ_BYTES):
                conn.moved_bytes += len(data)
                if conn.moved_bytes >= conn.next_fault_at:
                    conn.next_fault_at = conn.moved_bytes + self._gap()
                    if not await self._inject(conn):
                        return
                if conn.moved_bytes < conn.throttled_until_bytes:
                    await asyncio.sleep(len(data) / self.plan.throttle_bytes_per_s)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not writer.transport.is_closing():
                writer.close()

    async def _inject(self, conn: _Connection) -> bool:
        """Applies the next fault; False when the connection was cut."""
        drawn = self._draw()
        if drawn is None:
            return True
        kind, stall_s = drawn
        if kind is Fault.CUT:
            for w in conn.writers:
                w.transport.abort()
            return False
        if kind is Fault.STALL:
            await asyncio.sleep(stall_s)  # the fault itself: traffic stops for stall_s
        else:
            conn.throttled_until_bytes = conn.moved_bytes + self._gap()
        return True
