"""The collaborators the work service is given, as Protocols: the executor pool, the jobs RPCs
of one endpoint, and the finder of local copies. Tests swap these; nothing here is gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from photonic.agent.executors.base import Execution, ExecutorInfo, JobTicket
from photonic.jobs_model import ServerOrder, WorkerReport

LocalCopies = Callable[[str], Sequence[Path]]
"""Paths on this machine that held a content when last hashed (AgentStateDB.local_copy_of
with the configured watch roots bound); blocking, so it is called in a thread."""


class ExecutorPool(Protocol):
    """Runs executors isolated from the agent. Cancelling run() kills its child process."""

    async def probe(self) -> list[ExecutorInfo]:
        """The executors that load on this machine, with their versions and models."""
        ...

    async def run(self, kind: str, input_path: Path, output_dir: Path,
                  params: Mapping[str, object], *, timeout_s: float,
                  ticket: JobTicket | None = None) -> Execution:
        """Runs one input; raises ExecutorError (with retryable) when the job fails, HandBack
        when the job must go back to the server unfailed."""
        ...

    def on_change(self, callback: Callable[[], None]) -> None:
        """callback runs whenever probe() may answer differently (a plugin came or went)."""
        ...

    async def close(self) -> None: ...


class WorkChannel(Protocol):
    """One open Work stream."""

    async def send(self, report: WorkerReport) -> None: ...

    def orders(self) -> AsyncIterator[ServerOrder]: ...

    async def done_writing(self) -> None: ...

    def cancel(self) -> None: ...


class JobsRpc(Protocol):
    """The worker RPCs of one server endpoint (jobs_channel.JobsChannel)."""

    endpoint: str

    def open_work(self) -> WorkChannel: ...

    def fetch_blob(self, sha256: str, offset: int, job_id: str, attempt: int
                   ) -> AsyncIterator[bytes]: ...

    async def upload_result(self, job_id: str, attempt: int, path: Path, sha256: str,
                            name: str) -> None: ...

    async def close(self) -> None: ...
