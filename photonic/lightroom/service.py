"""What the bridge does, apart from HTTP: clients hand-shake, register, poll and send; jobs are
offered to one client and their outcome handed to the waiting run_job; silent clients are
removed and their jobs handed back. The HTTP routes translate to these calls and nothing more."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from photonic.agent.executors.base import ExecutorError, HandBack
from photonic.lightroom import protocol as p
from photonic.lightroom.clients import Client, ClientRegistry, JobKey, Message
from photonic.lightroom.exports import checked_outputs, make_export_dir

log = logging.getLogger("photonic.lightroom")

DISCONNECTED = "the Lightroom plugin disconnected"


@dataclass
class _Assignment:
    """A job attempt offered to one client, and the future its run_job awaits."""

    key: JobKey
    client_id: str
    export_dir: Path
    progress: Callable[[float, str], None]
    outcome: asyncio.Future[list[Path]]


class BridgeService:
    """The bridge's state and rules; every method runs on the agent's event loop."""

    def __init__(self, registry: ClientRegistry, jobs_dir: Path,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._registry = registry
        self._jobs_dir = jobs_dir
        self._wall_clock = wall_clock
        self._assignments: dict[JobKey, _Assignment] = {}
        self._callbacks: list[Callable[[], None]] = []
        self._version: str | None = None
        self._closed = False

    def lightroom_version(self) -> str | None:
        return self._registry.lightroom_version()

    def on_change(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def handshake(self, hello: p.Handshake) -> Message:
        client = self._registry.add(hello.client_type)
        reply = p.connection_established(client.client_id, self._now_ms())
        client.push(reply)
        log.info("lightroom client=%s type=%s connected", client.client_id, client.client_type)
        return reply

    async def receive(self, client_id: str, message: p.Inbound) -> None:
        client = self._registry.get(client_id)
        if isinstance(message, p.Register):
            client.registered = True
            client.lightroom_version = message.lightroom_version
            client.catalog, client.plugin_version = message.catalog, message.plugin_version
            log.info("lightroom client=%s registered lightroom=%s", client_id,
                     message.lightroom_version)
            self._changed()
        elif isinstance(message, p.Subscribe):
            if message.on:
                client.subscriptions |= message.channels
            else:
                client.subscriptions -= message.channels
            self._changed()
        elif isinstance(message, p.Ping):
            client.push(p.pong(self._now_ms()))
        else:
            await self._job_message(client, message)

    async def poll(self, client_id: str, timeout_s: float,
                   gone: Callable[[], bool] = lambda: False) -> list[Message]:
        """The client's waiting messages, waiting up to timeout_s for one. Nothing is taken
        for a requester that already hung up, so its messages wait for its next poll."""
        client = self._registry.get(client_id)
        may_take = await client.wait(timeout_s)
        client = self._registry.get(client_id)  # NotFound if it went meanwhile
        if not may_take or gone():
            return []
        return client.take()

    def disconnect(self, client_id: str) -> None:
        self._registry.get(client_id)
        self._drop_client(client_id, DISCONNECTED)

    def sweep(self) -> int:
        """Removes clients silent for client_timeout_s, handing back their jobs."""
        stale = self._registry.stale()
        for client in stale:
            log.warning("lightroom client=%s silent for %gs: removed", client.client_id,
                        self._registry.client_timeout_s)
            self._drop_client(client.client_id, f"{DISCONNECTED} (silent for "
                              f"{self._registry.client_timeout_s:g} s)")
        return len(stale)

    def close(self) -> None:
        """Removes every client; every waiting run_job raises HandBack."""
        self._closed = True
        for client in self._registry:
            self._drop_client(client.client_id, "the Lightroom bridge stopped")

    def status(self) -> Message:
        clients = [{"client_id": c.client_id, "client_type": c.client_type,
                    "registered": c.registered, "lightroom_version": c.lightroom_version,
                    "catalog": c.catalog, "queued": c.queued, "dropped": c.dropped_total,
                    "jobs": len(c.jobs)} for c in self._registry]
        return {"type": "status", "clients": clients,
                "protocol_versions": list(p.PROTOCOL_VERSIONS)}

    async def run_job(self, job_id: str, attempt: int, input_path: Path,
                      develop: Mapping[str, object], export: Mapping[str, object],
                      progress: Callable[[float, str], None]) -> list[Path]:
        """Offers the job to one client and returns its checked outputs (see LightroomBridge)."""
        key = (job_id, attempt)
        if key in self._assignments:
            raise ExecutorError(f"job {job_id} attempt {attempt} is already in Lightroom",
                                retryable=True)
        self._taker()
        export_dir = await asyncio.to_thread(make_export_dir, self._jobs_dir, job_id, attempt)
        try:
            client = self._taker()
        except HandBack:
            export_dir.rmdir()
            raise
        assignment = _Assignment(key, client.client_id, export_dir, progress,
                                 asyncio.get_running_loop().create_future())
        self._assignments[key] = assignment
        client.jobs.add(key)
        client.push(p.job_assigned(job_id, attempt, str(input_path), str(export_dir),
                                   develop, export))
        log.info("lightroom client=%s job=%s attempt=%d assigned", client.client_id, job_id,
                 attempt)
        try:
            return await assignment.outcome
        except asyncio.CancelledError:
            self._withdraw(assignment)
            raise
        finally:
            self._forget(assignment)

    def _taker(self) -> Client:
        client = None if self._closed else self._registry.job_taker()
        if client is None:
            raise HandBack("no Lightroom plugin is connected and registered for jobs")
        return client

    async def _job_message(self, client: Client, message: p.JobMessage) -> None:
        assignment = self._assignment(client, message)
        if isinstance(message, p.JobProgress):
            try:
                assignment.progress(message.fraction, message.message)
            except Exception:
                log.exception("lightroom job=%s progress callback failed", message.job_id)
        elif isinstance(message, p.JobFailed):
            assignment.outcome.set_exception(ExecutorError(message.error, retryable=False))
        else:
            outputs = await asyncio.to_thread(checked_outputs, assignment.export_dir,
                                              message.outputs)
            self._assignment(client, message).outcome.set_result(outputs)

    def _assignment(self, client: Client, message: p.JobMessage) -> _Assignment:
        key = (message.job_id, message.attempt)
        assignment = self._assignments.get(key)
        if assignment is None or assignment.client_id != client.client_id \
                or assignment.outcome.done():
            raise p.JobConflict(f"job {message.job_id} attempt {message.attempt} is not "
                                "assigned to this client (cancelled, handed back or unknown): "
                                "drop it")
        return assignment

    def _withdraw(self, assignment: _Assignment) -> None:
        """The job's run_job was cancelled: stop the plugin working on it."""
        if self._assignments.get(assignment.key) is not assignment:
            return
        client = self._registry.find(assignment.client_id)
        if client is not None and not client.withdraw(assignment.key):
            client.push(p.job_cancelled(*assignment.key))
        log.info("lightroom job=%s attempt=%d cancelled", *assignment.key)

    def _forget(self, assignment: _Assignment) -> None:
        if self._assignments.get(assignment.key) is assignment:
            del self._assignments[assignment.key]
        client = self._registry.find(assignment.client_id)
        if client is not None:
            client.jobs.discard(assignment.key)

    def _drop_client(self, client_id: str, reason: str) -> None:
        client = self._registry.remove(client_id)
        if client is None:
            return
        for key in client.jobs:
            assignment = self._assignments.get(key)
            if assignment is not None and not assignment.outcome.done():
                assignment.outcome.set_exception(HandBack(reason))
        log.info("lightroom client=%s gone: %s", client_id, reason)
        self._changed()

    def _changed(self) -> None:
        version = self._registry.lightroom_version()
        if version == self._version:
            return
        self._version = version
        for callback in list(self._callbacks):
            try:
                callback()
            except Exception:
                log.exception("lightroom version callback failed")

    def _now_ms(self) -> int:
        return int(self._wall_clock() * 1000)
