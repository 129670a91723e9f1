"""WorkService: the agent's long-running worker. It opens Work on every configured server,
keeps the jobs of all of them within work.max_concurrent, and on stop lets running jobs
finish within work.grace_s before handing the rest back (Released), so no job is left
leased to a worker that has gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from photonic import __version__
from photonic.agent.backoff import Backoff
from photonic.agent.executors.base import ExecutorInfo
from photonic.agent.work.inputs import InputStore
from photonic.agent.work.job_runner import RunnerDeps, StopReason
from photonic.agent.work.metrics import WorkerMetrics
from photonic.agent.work.seams import ExecutorPool, JobsRpc, LocalCopies
from photonic.agent.work.session import EndpointSession
from photonic.agent.work.slots import SlotBook
from photonic.config import WorkConfig
from photonic.jobs_model import Held, WorkerHello
from photonic.logfmt import event

log = logging.getLogger("photonic.agent.work")

RELEASE_WAIT_S = 15.0


def os_tag() -> str:
    """The `os=` capability tag of this machine, as jobs require it (`os=macos`)."""
    if sys.platform.startswith("darwin"):
        return "os=macos"
    if sys.platform.startswith("win"):
        return "os=windows"
    return "os=linux"


class WorkService:
    """A service of the agent's runtime: run(stop) until stop is set, then drain and return.

    rpcs holds one JobsRpc per server endpoint; the service closes them and the pool at its
    final stop (it is their only user)."""

    def __init__(self, *, agent_id: str, rpcs: Sequence[JobsRpc], pool: ExecutorPool,
                 local_copies: LocalCopies, config: WorkConfig, buffer_path: Path,
                 metrics: WorkerMetrics | None = None,
                 backoff: Callable[[], Backoff] = Backoff) -> None:
        self._agent_id = agent_id
        self._rpcs = tuple(rpcs)
        self._pool = pool
        self._config = config
        self._work_dir = buffer_path / "work"
        self._metrics = metrics or WorkerMetrics()
        self._backoff = backoff
        self.slots = SlotBook(config.max_concurrent)
        self.inputs = InputStore(self._work_dir / "inputs", local_copies, self._metrics)
        self.sessions: list[EndpointSession] = []
        self._finished = asyncio.Event()
        self._background: set[asyncio.Future[None]] = set()
        self._closed = False
        self.ready = asyncio.Event()
        """Set once the executors are probed and every endpoint has its session (tests)."""

    name = "work"

    @property
    def running(self) -> int:
        """Jobs running now, across every server."""
        return self.slots.running

    async def run(self, stop: asyncio.Event) -> None:
        """Serves every endpoint until stop is set, then drains. A crash (or the runtime's
        cancel) still hands every running job back first. The pool and the channels are
        closed only at the final stop, so the runtime may run the service again after a
        crash."""
        self._finished.clear()
        try:
            await self._serve(stop)
        finally:
            if stop.is_set():
                await self.close()
            self._finished.set()

    async def stop(self, grace_s: float) -> None:
        """The runtime's graceful stop (after the stop event is set): returns once the
        drain is over, or after grace_s."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._finished.wait(), grace_s)

    async def close(self) -> None:
        """Closes the channels and the executor pool (their only user); idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(rpc.close() for rpc in self._rpcs), return_exceptions=True)
        await self._pool.close()

    async def _serve(self, stop: asyncio.Event) -> None:
        # A crash's leftover job folders; fetched inputs stay (a resume or a cache hit).
        await asyncio.to_thread(shutil.rmtree, self._work_dir / "jobs", True)
        executors = await self._executors()
        known: dict[str, ExecutorInfo] = {info.name: info for info in executors}
        deps = RunnerDeps(pool=self._pool, inputs=self.inputs, executors=known,
                          jobs_dir=self._work_dir / "jobs", agent_id=self._agent_id,
                          metrics=self._metrics)
        hello = self._hello_maker(executors)
        self._pool.on_change(lambda: self._later(self._executors_changed(known)))
        self.slots = SlotBook(self._config.max_concurrent)
        self.sessions = [EndpointSession(rpc, hello, self.slots, deps, self._backoff())
                         for rpc in self._rpcs]
        closing = asyncio.Event()
        tasks = [asyncio.create_task(s.run(closing), name=f"work {s.endpoint}")
                 for s in self.sessions]
        self.ready.set()
        try:
            await stop.wait()
            await self._drain()
        finally:
            await self._release_all()
            closing.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _executors_changed(self, known: dict[str, ExecutorInfo]) -> None:
        """Probes again and says Hello anew on every stream with what runs now."""
        executors = await self._executors()
        known.clear()
        known.update({info.name: info for info in executors})
        hello = self._hello_maker(executors)
        event(log, "executors_changed", agent=self._agent_id,
              executors=",".join(f"{i.name}={i.version}" for i in executors))
        for session in self.sessions:
            await session.rehello(hello)

    async def _executors(self) -> list[ExecutorInfo]:
        """What the pool loads, narrowed to work.executors when that lists some."""
        infos = await self._pool.probe()
        wanted = self._config.executors
        chosen = [i for i in infos if wanted is None or i.name in wanted]
        if not chosen:
            event(log, "no_executors", logging.WARNING, agent=self._agent_id,
                  hint="run `photonic models fetch`; see the agent log for each executor")
        return chosen

    def _hello_maker(self, executors: Sequence[ExecutorInfo]
                     ) -> Callable[[tuple[Held, ...]], WorkerHello]:
        tags: list[str] = []
        for tag in (*(i.name for i in executors), *(t for i in executors for t in i.extra_tags),
                    *self._config.tags, os_tag()):
            if tag not in tags:
                tags.append(tag)
        names = tuple(f"{i.name}={i.version}" for i in executors)

        def hello(held: tuple[Held, ...]) -> WorkerHello:
            return WorkerHello(capabilities=tuple(tags),
                               max_concurrent=self._config.max_concurrent, held=held,
                               version=__version__, executors=names)

        return hello

    async def _drain(self) -> None:
        """Takes no new job (Capacity 0 everywhere), gives the running ones grace_s to end,
        then stops the rest, which report Released, and waits for those reports."""
        self.slots.close()
        runs = [run for s in self.sessions for run in s.jobs.values()]
        tasks = [run.task for run in runs if run.task is not None]
        if not tasks:
            return
        event(log, "work_draining", running=len(tasks), grace_s=self._config.grace_s)
        await asyncio.wait(tasks, timeout=self._config.grace_s)

    async def _release_all(self) -> None:
        """Stops every job still running, each reporting Released, and waits (bounded by
        RELEASE_WAIT_S: the pool kills a child that ignores SIGTERM well within it)."""
        tasks = [run.task for s in self.sessions for run in s.jobs.values()
                 if run.task is not None]
        for session in self.sessions:
            session.stop_jobs(StopReason.SHUTDOWN)
        if tasks:
            await asyncio.wait(tasks, timeout=RELEASE_WAIT_S)
