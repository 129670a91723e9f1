"""The Lua plugin's test harness: the real LightroomBridge on its own event loop thread, and
Photonic.lrplugin running under lua5.1 with the stub SDK (tests/lightroom/run_plugin.lua) as a
subprocess that is always killed at the end."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from photonic.lightroom.bridge import LightroomBridge
from photonic.lightroom.install import install_plugin

T = TypeVar("T")

LUA = shutil.which("lua5.1")
HERE = Path(__file__).resolve().parent
RUNNER = HERE / "run_plugin.lua"
SECRET = "5e" * 32

# Fast timings for tests: the defaults (25 s polls, 1..60 s backoff) would make them slow.
TEST_SETTINGS: Mapping[str, object] = {
    "poll_timeout_s": 1, "backoff_base_s": 0.1, "backoff_cap_s": 0.5, "ping_interval_s": 1,
}


class BridgeLoop:
    """An event loop on a thread, for running the bridge beside synchronous tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 10.0) -> T:
        return self.submit(coro).result(timeout_s)

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapped() -> T:
            return fn()
        return self.run(wrapped())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class BridgeHandle:
    """A LightroomBridge started on the loop, with the test secret."""

    def __init__(self, loop: BridgeLoop, jobs_dir: Path, port: int = 0,
                 client_timeout_s: float = 300.0) -> None:
        self._loop = loop
        self.jobs_dir = jobs_dir

        async def make() -> LightroomBridge:
            return LightroomBridge(SECRET, port=port, client_timeout_s=client_timeout_s,
                                   jobs_dir=jobs_dir)
        self.bridge = loop.run(make())
        self.port = loop.run(self.bridge.start())
        self.progress: list[tuple[float, str]] = []

    def version(self) -> str | None:
        return self._loop.call(self.bridge.lightroom_version)

    def run_job(self, job_id: str, attempt: int, input_path: Path,
                develop: Mapping[str, object], export: Mapping[str, object]) -> Future[list[Path]]:
        def progress(fraction: float, message: str) -> None:
            self.progress.append((fraction, message))
        return self._loop.submit(self.bridge.run_job(job_id, attempt, input_path, develop,
                                                     export, progress))

    def stop(self) -> None:
        self._loop.run(self.bridge.stop())


class LuaPlugin:
    """Photonic.lrplugin installed into a folder of its own and run by lua5.1."""

    def __init__(self, root: Path, port: int, render_delay_s: float = 0.0,
                 exit_after_jobs: int | None = None, secret: str = SECRET) -> None:
        assert LUA is not None
        root.mkdir(parents=True, exist_ok=True)
        installed = install_plugin(root / "Modules", f"http://127.0.0.1:{port}", secret,
                                   TEST_SETTINGS)
        self.stderr_path = root / "stderr.log"
        self.stdout_path = root / "stdout.log"
        env = dict(os.environ,
                   PHOTONIC_PLUGIN_DIR=str(installed.plugin_dir),
                   PHOTONIC_STUB_PYTHON=sys.executable,
                   PHOTONIC_STUB_CATALOG=str(root / "Test Catalog.lrcat"),
                   PHOTONIC_STUB_RENDER_DELAY_S=str(render_delay_s))
        if exit_after_jobs is not None:
            env["PHOTONIC_STUB_EXIT_AFTER_JOBS"] = str(exit_after_jobs)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen([LUA, str(RUNNER)], env=env, stdout=out,
                                            stderr=err, stdin=subprocess.DEVNULL)

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
