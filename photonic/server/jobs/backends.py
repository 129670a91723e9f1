"""Chooses the job queue's backend from `jobs.queue_url` (the embedded SQLite file, or a
PostgreSQL database that several servers share) and, for a shared one, the listener that
keeps their dispatch push-based."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from photonic._configjobs import queue_backend
from photonic.server.jobs.queue import JobQueue
from photonic.server.jobs.service import JobsService
from photonic.server.jobs.sqlite_queue import SqliteJobQueue

SQLITE_PREFIX = "sqlite://"


def open_job_queue(url: str, storage_path: Path) -> JobQueue:
    """Empty: <storage_path>/jobs.db; sqlite:///path: that file; postgresql://: the shared
    queue (psycopg is imported only then: the embedded server does not need it)."""
    if queue_backend(url) == "postgresql":
        from photonic.server.jobs.pg_queue import PgJobQueue
        return PgJobQueue(url)
    path = Path(url[len(SQLITE_PREFIX):]) if url else storage_path / "jobs.db"
    return SqliteJobQueue(path)


class SharedDispatch:
    """Wires a shared queue's notifications into this server's dispatcher: wake-ups run an
    assign pass; a stop reaches the worker of ours that runs that attempt."""

    def __init__(self, queue: JobQueue, jobs: JobsService) -> None:
        from photonic.server.jobs.pg_listen import JobNotifications
        from photonic.server.jobs.pg_queue import PgJobQueue
        assert isinstance(queue, PgJobQueue)
        self._queue = queue
        self._jobs = jobs
        self.notifications = JobNotifications(queue.url, queue.origin,
                                              wake=lambda _why: jobs.dispatcher.kick(),
                                              stop=self._stop)

    async def start(self) -> None:
        await self.notifications.start()

    async def stop(self) -> None:
        await self.notifications.stop()

    async def _stop(self, job_ids: Sequence[str]) -> None:
        jobs = await asyncio.to_thread(lambda: [self._queue.get(i) for i in job_ids])
        self._jobs.dispatcher.cancel([j for j in jobs if j is not None])


def shared_dispatch(url: str, queue: JobQueue, jobs: JobsService) -> SharedDispatch | None:
    """The listener a shared (PostgreSQL) queue needs; None for the embedded one."""
    return SharedDispatch(queue, jobs) if queue_backend(url) == "postgresql" else None
