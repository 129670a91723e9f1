"""Runs the agent's long-running services side by side and stops them gracefully, in the
manner of Temporal's Worker: run until told to stop, then drain within a grace period.

The policy, in one place:
- Services start in the order they were added. A service may have `start()`: it is awaited
  before the next service starts, for what must be in place first (the watcher's observers
  before the first sync); a failure there aborts the run, as a bad config would.
- An essential service (sync) ending, by return or by crash, ends the run: the others are
  stopped and its crash is raised from run(). A non-essential service (the watcher, the status
  file, metrics, work) that crashes is logged and run again after a backoff, reset once it
  has stayed up a while; one that returns is simply done.
- Stopping (the caller's stop event, set by SIGTERM, or an essential service's end) goes in
  reverse order, one service at a time: its own stop event is set, its `stop(grace_s)` is
  awaited (up to grace_s) if it has one, then it has grace_s to return before it is
  cancelled. The grace is the runtime's, or the one given to add(). The caller
  closes what the services share (the state database) only after run() returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from photonic.agent.backoff import Backoff
from photonic.logfmt import event

log = logging.getLogger("photonic.agent.runtime")

T = TypeVar("T")

DEFAULT_GRACE_S = 10.0
STABLE_AFTER_S = 60.0
"""A restarted service that stays up this long starts its backoff afresh at its next crash."""


class Service(Protocol):
    """A long-running part of the agent."""

    @property
    def name(self) -> str: ...

    async def run(self, stop: asyncio.Event) -> None:
        """Works until stop is set (then returns promptly), or until its work is done."""


@runtime_checkable
class Startable(Protocol):
    """Optional: a service with something to set up before the next one starts."""

    async def start(self) -> None: ...


@runtime_checkable
class GracefullyStoppable(Protocol):
    """Optional: a service told to stop (after its stop event is set) with its grace."""

    async def stop(self, grace_s: float) -> None: ...


@dataclass
class _Entry:
    service: Service
    essential: bool
    grace_s: float
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class AgentRuntime:
    """Supervises services: add() them, then run(stop) until stop or an essential end."""

    def __init__(self, *, grace_s: float = DEFAULT_GRACE_S,
                 backoff: Callable[[], Backoff] = Backoff,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._grace_s = grace_s
        self._backoff = backoff
        self._clock = clock
        self._entries: list[_Entry] = []

    @property
    def services(self) -> list[str]:
        return [e.service.name for e in self._entries]

    def add(self, service: Service, *, essential: bool = False,
            grace_s: float | None = None) -> None:
        """Adds a service; it starts after, and stops before, those added earlier. grace_s
        overrides the runtime's grace for this one (the work service's is configured)."""
        self._entries.append(_Entry(service, essential,
                                    self._grace_s if grace_s is None else grace_s))

    async def run(self, stop: asyncio.Event,
                  on_started: Callable[[], object] | None = None) -> None:
        """Starts every service (then calls on_started: readiness for systemd), waits for
        stop or an essential service's end, stops them all (reverse order, with grace), and
        raises an essential service's crash."""
        started: list[_Entry] = []
        try:
            for entry in self._entries:
                if isinstance(entry.service, Startable):
                    await entry.service.start()
                entry.task = asyncio.create_task(self._supervise(entry),
                                                 name=f"photonic-{entry.service.name}")
                started.append(entry)
            if on_started is not None:
                on_started()
            await self._until_stop_or_essential_end(stop, started)
        finally:
            for entry in reversed(started):
                await self._stop(entry)
        for entry in started:
            if entry.essential and entry.task is not None and not entry.task.cancelled():
                crash = entry.task.exception()
                if crash is not None:
                    raise crash

    async def _until_stop_or_essential_end(self, stop: asyncio.Event,
                                           started: list[_Entry]) -> None:
        stopped = asyncio.create_task(stop.wait())
        essential = [e.task for e in started if e.essential and e.task is not None]
        try:
            await asyncio.wait([stopped, *essential], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()

    async def _supervise(self, entry: _Entry) -> None:
        """Runs one service; restarts a non-essential one that crashed, after a backoff."""
        if entry.essential:
            await entry.service.run(entry.stop)
            return
        backoff = self._backoff()
        while not entry.stop.is_set():
            began = self._clock()
            try:
                await entry.service.run(entry.stop)
                return
            except Exception as exc:
                if self._clock() - began >= STABLE_AFTER_S:
                    backoff.reset()
                delay_s = backoff.next_delay_s()
                log.exception("service crashed", extra={"service": entry.service.name})
                event(log, "service_restarting", logging.WARNING, service=entry.service.name,
                      error=repr(exc), delay_s=round(delay_s, 2))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.stop.wait(), delay_s)

    async def _stop(self, entry: _Entry) -> None:
        """Sets the service's stop event, gives it grace_s to return, then cancels it."""
        entry.stop.set()
        grace_s = entry.grace_s
        task = entry.task
        if task is None:
            return
        if isinstance(entry.service, GracefullyStoppable) and not task.done():
            try:
                await asyncio.wait_for(entry.service.stop(grace_s), grace_s)
            except Exception:
                log.exception("service stop failed", extra={"service": entry.service.name})
        if not task.done():
            await asyncio.wait([task], timeout=grace_s)
        if not task.done():
            event(log, "service_cancelled", logging.WARNING, service=entry.service.name,
                  grace_s=grace_s)
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """Runs work until it ends or stop is set, whichever comes first; in the second case it
    is cancelled and None returned. For a service's long step that has nothing to save when
    interrupted (a reconcile scan: the next one starts over), so stopping need not wait."""
    task = asyncio.create_task(work)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return None if task.cancelled() else task.result()
