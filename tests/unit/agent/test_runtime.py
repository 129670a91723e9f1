"""AgentRuntime: services start in order and stop in reverse with a grace period; an
essential service's end ends the run (its crash is raised); a non-essential crash is logged
and the service restarted with backoff."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec

import pytest

from photonic.agent.backoff import Backoff
from photonic.agent.runtime import AgentRuntime, unless_stopped


class Recorder:
    """A service that notes its start, run and stop in a shared log."""

    def __init__(self, name: str, log: list[str], *, ends_after: asyncio.Event | None = None,
                 crashes: int = 0, ignores_stop: bool = False) -> None:
        self.name = name
        self._log = log
        self._ends_after = ends_after
        self._crashes = crashes
        self._ignores_stop = ignores_stop
        self.runs = 0

    async def start(self) -> None:
        self._log.append(f"start {self.name}")

    async def run(self, stop: asyncio.Event) -> None:
        self.runs += 1
        if self.runs <= self._crashes:
            raise RuntimeError(f"{self.name} crash {self.runs}")
        try:
            if self._ignores_stop:
                await asyncio.Event().wait()
            waits = [asyncio.create_task(stop.wait())]
            if self._ends_after is not None:
                waits.append(asyncio.create_task(self._ends_after.wait()))
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
        finally:
            self._log.append(f"stopped {self.name}")


P = ParamSpec("P")


def in_loop(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Runs an async test in a fresh event loop (the suite has no asyncio plugin)."""
    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))
    return run


def _quick_backoff() -> Backoff:
    return Backoff(initial_s=0.001, max_s=0.002, rng=random.Random(1))


@in_loop
async def test_services_start_in_order_and_stop_in_reverse_when_stop_is_set() -> None:
    """SIGTERM's stop event drains every service, the last added first; the state database
    (closed by the caller after run()) outlives them all."""
    log: list[str] = []
    runtime = AgentRuntime(grace_s=1)
    for name in ("metrics", "watcher", "status"):
        runtime.add(Recorder(name, log))
    runtime.add(Recorder("sync", log), essential=True)
    stop = asyncio.Event()
    running = asyncio.create_task(runtime.run(stop))
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert log == ["start metrics", "start watcher", "start status", "start sync",
                   "stopped sync", "stopped status", "stopped watcher", "stopped metrics"]


@in_loop
async def test_the_end_of_an_essential_service_ends_the_run() -> None:
    """`--once`: sync returning (its work done) stops the others without any stop event."""
    log: list[str] = []
    done = asyncio.Event()
    runtime = AgentRuntime(grace_s=1)
    runtime.add(Recorder("watcher", log))
    runtime.add(Recorder("sync", log, ends_after=done), essential=True)
    running = asyncio.create_task(runtime.run(asyncio.Event()))
    await asyncio.sleep(0)
    done.set()
    await asyncio.wait_for(running, 5)
    assert log[-2:] == ["stopped sync", "stopped watcher"]


@in_loop
async def test_an_essential_crash_stops_the_rest_and_is_raised() -> None:
    """A crash of sync is not swallowed: the others are drained, then it is raised."""
    log: list[str] = []
    runtime = AgentRuntime(grace_s=1)
    runtime.add(Recorder("watcher", log))
    runtime.add(Recorder("sync", log, crashes=1), essential=True)
    with pytest.raises(RuntimeError, match="sync crash 1"):
        await asyncio.wait_for(runtime.run(asyncio.Event()), 5)
    assert log[-1] == "stopped watcher"


@in_loop
async def test_a_non_essential_crash_is_restarted_with_backoff(
        caplog: pytest.LogCaptureFixture) -> None:
    """The watcher crashing twice is logged each time and run again; sync never notices."""
    log: list[str] = []
    watcher = Recorder("watcher", log, crashes=2)
    runtime = AgentRuntime(grace_s=1, backoff=_quick_backoff)
    runtime.add(watcher)
    runtime.add(Recorder("sync", log), essential=True)
    stop = asyncio.Event()
    running = asyncio.create_task(runtime.run(stop))
    for _ in range(500):
        if watcher.runs >= 3:
            break
        await asyncio.sleep(0.001)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert watcher.runs == 3
    assert caplog.text.count("service_restarting") == 2


@in_loop
async def test_a_service_that_ignores_stop_is_cancelled_after_the_grace() -> None:
    """A stuck service costs the grace period, not the shutdown."""
    log: list[str] = []
    runtime = AgentRuntime(grace_s=0.05)
    runtime.add(Recorder("stuck", log, ignores_stop=True))
    runtime.add(Recorder("sync", log), essential=True)
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(runtime.run(stop), 5)
    assert log[-1] == "stopped stuck"


@in_loop
async def test_unless_stopped_cancels_the_work_when_stop_is_set() -> None:
    """A long step (a reconcile scan) does not hold up stopping; a finished one returns."""
    stop = asyncio.Event()
    assert await unless_stopped(asyncio.sleep(0, result=7), stop) == 7
    stop.set()
    assert await unless_stopped(asyncio.Event().wait(), stop) is None


class GracefulRecorder(Recorder):
    """A service with stop(grace_s), like the work service: notes the grace it was given."""

    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__(name, log)
        self.graces: list[float] = []

    async def stop(self, grace_s: float) -> None:
        self.graces.append(grace_s)


@in_loop
async def test_stop_is_called_with_the_grace_given_to_add() -> None:
    """A service's own grace (work.grace_s) reaches its stop(); others use the runtime's."""
    log: list[str] = []
    work, other = GracefulRecorder("work", log), GracefulRecorder("other", log)
    runtime = AgentRuntime(grace_s=1)
    runtime.add(other)
    runtime.add(work, grace_s=2.5)
    runtime.add(Recorder("sync", log), essential=True)
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(runtime.run(stop), 5)
    assert (work.graces, other.graces) == ([2.5], [1])
