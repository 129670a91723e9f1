"""The Lightroom bridge as the agent runs it: the HTTP server on loopback, on the agent's own
event loop, the sweep that removes silent clients, and run_job, through which the work
service hands a job to Lightroom."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from aiohttp import web

from photonic.lightroom.clients import ClientRegistry
from photonic.lightroom.routes import make_app
from photonic.lightroom.service import BridgeService

log = logging.getLogger("photonic.lightroom")

SHUTDOWN_GRACE_S = 2.0
"""At stop, how long answers in flight get; polls are woken first, so they need little."""


class LightroomBridge:
    """Serves docs/lightroom-bridge.md on a loopback address only.

    run_job raises HandBack (from photonic.agent.executors.base) when no plugin can take the
    job or its plugin goes (disconnects, falls silent, the bridge stops), and ExecutorError
    when Lightroom reports the job failed."""

    def __init__(self, secret: str, *, host: str = "127.0.0.1", port: int = 7777,
                 queue_limit: int = 100, client_timeout_s: float = 300.0,
                 jobs_dir: Path) -> None:
        _require_loopback(host)
        self._host, self._port = host, port
        self._registry = ClientRegistry(queue_limit=queue_limit,
                                        client_timeout_s=client_timeout_s)
        self._service = BridgeService(self._registry, jobs_dir)
        self._app = make_app(self._service, secret)
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Starts serving; returns the bound port (port=0 picks a free one)."""
        runner = web.AppRunner(self._app, handle_signals=False, access_log=None,
                               shutdown_timeout=SHUTDOWN_GRACE_S)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._sweeper = asyncio.create_task(self._sweep(), name="lightroom-bridge-sweep")
        port = _bound_port(runner, self._port)
        log.info("lightroom bridge listening on %s:%d", self._host, port)
        return port

    async def stop(self) -> None:
        """Stops serving. Every run_job still waiting raises HandBack; every poll answers."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self._service.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def lightroom_version(self) -> str | None:
        """The newest Lightroom version among registered clients subscribed to jobs."""
        return self._service.lightroom_version()

    def on_change(self, callback: Callable[[], None]) -> None:
        """callback() runs on the loop whenever lightroom_version() changes."""
        self._service.on_change(callback)

    async def run_job(self, job_id: str, attempt: int, input_path: Path,
                      develop: Mapping[str, object], export: Mapping[str, object],
                      progress: Callable[[float, str], None]) -> list[Path]:
        """Runs one job attempt in Lightroom and returns its outputs, each a regular file in a
        fresh export folder (0700) under jobs_dir that the caller deletes when done.
        Cancelling the awaiting task tells the plugin to stop (job_cancelled)."""
        return await self._service.run_job(job_id, attempt, input_path, develop, export,
                                           progress)

    async def _sweep(self) -> None:
        interval_s = min(max(self._registry.client_timeout_s / 4, 0.01), 30.0)
        while True:
            await asyncio.sleep(interval_s)
            self._service.sweep()


def _require_loopback(host: str) -> None:
    """A loopback IP address, or ValueError: the bridge must be unreachable from elsewhere
    (a host name is refused too, since it could resolve to anything)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the Lightroom bridge listens on a loopback address such as "
                         f"127.0.0.1 only, not {host!r}")


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked
