"""The `lightroom` executor: a job handed to Lightroom Classic through the local bridge and
its plugin. It is advertised only while a plugin is registered (`lightroom=<version>`); when
the plugin goes away mid-job the bridge raises HandBack and the job returns to the server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from photonic import __version__
from photonic.agent.executors.base import (
    Execution,
    ExecutorError,
    ExecutorInfo,
    JobTicket,
    Output,
)

NAME = "lightroom"


class Bridge(Protocol):
    """What the executor needs of photonic.lightroom.bridge.LightroomBridge."""

    def lightroom_version(self) -> str | None: ...

    def on_change(self, callback: Callable[[], None]) -> None: ...

    async def run_job(self, job_id: str, attempt: int, input_path: Path,
                      develop: Mapping[str, object], export: Mapping[str, object],
                      progress: Callable[[float, str], None]) -> list[Path]: ...


class LightroomExecutor:
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    def info(self) -> ExecutorInfo | None:
        """None while no plugin is registered: the worker does not say it runs lightroom."""
        version = self._bridge.lightroom_version()
        if version is None:
            return None
        return ExecutorInfo(NAME, f"{__version__}+lightroom-{version}",
                            extra_tags=(f"{NAME}={version}",))

    async def run(self, input_path: Path, output_dir: Path, params: Mapping[str, object],
                  ticket: JobTicket | None) -> Execution:
        """Hands the job to a plugin; its exports are moved into output_dir (the attempt's
        folder, removed with it) and named after the input."""
        if ticket is None:
            raise ExecutorError("a lightroom job needs its job id", retryable=True)
        develop = _mapping(params.get("develop"))
        export = _mapping(params.get("export"))
        version = self._bridge.lightroom_version() or ""
        exported = await self._bridge.run_job(ticket.job_id, ticket.attempt, input_path,
                                              develop, export, ticket.progress)
        if not exported:
            raise ExecutorError("Lightroom exported nothing", retryable=False)
        outputs = await asyncio.to_thread(_collect, exported, output_dir, input_path.stem)
        settings = _mapping(develop.get("settings"))
        return Execution(outputs, {
            "lightroom_version": version,
            "preset": str(develop.get("preset", "")),
            "settings_sha256": hashlib.sha256(
                json.dumps(settings, sort_keys=True).encode()).hexdigest() if settings else "",
            "export": dict(export),
        })


def _mapping(value: object) -> dict[str, object]:
    return dict(value) if isinstance(value, Mapping) else {}


def _collect(exported: list[Path], output_dir: Path, stem: str) -> list[Output]:
    """Moves each export into output_dir as `<input stem>.<ext>` (`<stem>.<n>.<ext>` when
    there are several) and removes the bridge's export folder."""
    output_dir.mkdir(parents=True, exist_ok=True)
    outputs: list[Output] = []
    for n, path in enumerate(exported, 1):
        name = f"{stem}{path.suffix.lower()}" if len(exported) == 1 else \
            f"{stem}.{n}{path.suffix.lower()}"
        target = output_dir / name
        shutil.move(os.fspath(path), target)
        outputs.append(Output(target, name))
    folders = {p.parent for p in exported}
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return outputs
