"""Runs executors in child processes (child.py) so a model that crashes, hangs or grows never
takes the agent down. A child per executor kind (up to its max_concurrent) loads its model
once and serves job after job; one that dies, times out or is cancelled is killed and
replaced by a fresh one on the next job."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import struct
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from photonic.agent.executors.base import (
    Execution,
    ExecutorError,
    ExecutorInfo,
    JobTicket,
    Output,
)
from photonic.agent.executors.registry import KINDS

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
DEFAULT_MEMORY_LIMIT_BYTES = 2 * 1024**3
"""A suggested RLIMIT_AS for a child. Measured (mediapipe 1.2.3, x86_64): a loaded child
reserves ~1.1-1.3 GB of address space (RSS ~230 MB); a 24 MP bgremove peaks at 1.65 GB
(RSS 670 MB). 1 GiB fails that photo with "out of memory"; 2 GiB runs it."""
_STDERR_LINES = 20


class _ChildGone(Exception):
    """The child's stdout ended before its answer: it died."""


class _Child:
    """One executor process and its pipes. Not shared: one request at a time."""

    def __init__(self, kind: str, proc: asyncio.subprocess.Process) -> None:
        self.kind = kind
        self.proc = proc
        self.info: ExecutorInfo | None = None
        self.stderr_tail: deque[str] = deque(maxlen=_STDERR_LINES)
        self._drain = asyncio.create_task(self._read_stderr())

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def call(self, message: Mapping[str, object]) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        body = json.dumps(message, separators=(",", ":")).encode()
        try:
            self.proc.stdin.write(_HEADER.pack(len(body)) + body)
            await self.proc.stdin.drain()
            (size,) = _HEADER.unpack(await self.proc.stdout.readexactly(_HEADER.size))
            reply = json.loads(await self.proc.stdout.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise _ChildGone() from exc
        if not isinstance(reply, dict):
            raise _ChildGone()
        return reply

    async def death(self) -> str:
        """How the child ended, once it has: "signal 9", "exit code 1"."""
        code = await self.proc.wait()
        await self._drain
        return f"signal {-code}" if code < 0 else f"exit code {code}"

    async def stop(self, grace_s: float, *, ask_first: bool) -> None:
        """Ends the process and reaps it. ask_first: close its stdin and let it finish its
        loop; otherwise SIGTERM at once. SIGKILL whatever is still alive after grace_s."""
        if self.proc.returncode is None:
            if ask_first and self.proc.stdin is not None:
                self.proc.stdin.close()
            else:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        await self._drain

    async def _read_stderr(self) -> None:
        # Drained always: a child blocked on a full stderr pipe would look hung. Kept for the
        # log line that explains a crash.
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self.stderr_tail.append(line)
                log.debug("event=executor_stderr kind=%s pid=%d line=%r",
                          self.kind, self.proc.pid, line)


@dataclasses.dataclass
class _Slot:
    """A place for one child of a kind; empty until a job (or the probe) needs it."""

    kind: str
    child: _Child | None = None


class ExecutorPool:
    """The agent's only way to run an executor. Every method is a coroutine on the agent's
    loop; nothing here imports mediapipe, numpy or Pillow.

    options[kind]: `max_concurrent` (children of that kind, default 1) is the pool's; every
    other key (`model`, facecrop's `detector`, `min_confidence`) goes to the executor."""

    def __init__(self, models_dir: Path, enabled: Sequence[str] | None,
                 options: Mapping[str, Mapping[str, object]], *,
                 memory_limit_bytes: int | None, grace_s: float = 5.0,
                 load_timeout_s: float = 60.0) -> None:
        kinds = tuple(enabled) if enabled is not None else KINDS
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown executor {', '.join(unknown)}; there are "
                             f"{', '.join(KINDS)}")
        self._models_dir = models_dir
        self._memory_limit_bytes = memory_limit_bytes
        self._grace_s = grace_s
        self._load_timeout_s = load_timeout_s
        self._options = {k: {o: v for o, v in options.get(k, {}).items()
                             if o != "max_concurrent"} for k in kinds}
        self._idle: dict[str, asyncio.Queue[_Slot]] = {}
        self._slots: dict[str, list[_Slot]] = {}
        for kind in kinds:
            count = _max_concurrent(kind, options.get(kind, {}))
            self._slots[kind] = [_Slot(kind) for _ in range(count)]
            self._idle[kind] = asyncio.Queue()
            for slot in self._slots[kind]:
                self._idle[kind].put_nowait(slot)
        self._probed: list[ExecutorInfo] | None = None
        self.problems: dict[str, str] = {}
        """Why each executor that the probe found unusable is so (kind -> reason)."""
        self._reaping: set[asyncio.Task[None]] = set()
        self._closed = False

    def on_change(self, callback: Callable[[], None]) -> None:
        """What loads is found once (probe): nothing changes while the pool runs."""

    async def probe(self) -> list[ExecutorInfo]:
        """The executors that import and load their models, in the order enabled; cached.
        Each is loaded in its first child, which stays up to serve the first job."""
        if self._probed is None:
            infos = await asyncio.gather(*(self._probe_kind(k) for k in self._slots))
            self._probed = [info for info in infos if info is not None]
        return list(self._probed)

    async def run(self, kind: str, input_path: Path, output_dir: Path,
                  params: Mapping[str, object], *, timeout_s: float,
                  ticket: JobTicket | None = None) -> Execution:
        """Runs one job in a child of kind; raises ExecutorError. Cancelling the awaiting
        task kills that child (SIGTERM, SIGKILL after grace_s) before the cancel completes;
        the next job gets a fresh child. timeout_s bounds the job, not the child's start.
        ticket is not needed: these executors report nothing while they run."""
        if self._closed:
            raise ExecutorError("the executor pool is closed", retryable=True)
        if kind not in self._idle:
            raise ExecutorError(f"executor {kind!r} is not enabled here", retryable=True)
        slot = await self._idle[kind].get()
        try:
            child = await self._ready_child(slot)
            request = {"input": str(input_path), "output_dir": str(output_dir),
                       "params": dict(params)}
            return await self._execute(slot, child, request, timeout_s)
        finally:
            self._idle[kind].put_nowait(slot)

    def child_pids(self) -> dict[str, list[int]]:
        """The live children's process ids by kind (for status pages and tests)."""
        return {kind: [s.child.pid for s in slots
                       if s.child is not None and s.child.proc.returncode is None]
                for kind, slots in self._slots.items()}

    async def close(self) -> None:
        """Lets every child finish its loop (its stdin closes), kills what lingers past
        grace_s, and waits for the kills of cancelled jobs."""
        self._closed = True
        stops = [self._discard(slot, ask_first=True)
                 for slots in self._slots.values() for slot in slots]
        await asyncio.gather(*stops, *self._reaping)

    async def _probe_kind(self, kind: str) -> ExecutorInfo | None:
        slot = await self._idle[kind].get()
        try:
            child = await self._ready_child(slot)
        except ExecutorError as exc:
            self.problems[kind] = str(exc)
            log.warning("event=executor_unavailable kind=%s reason=%r", kind, str(exc))
            return None
        finally:
            self._idle[kind].put_nowait(slot)
        self.problems.pop(kind, None)
        return child.info

    async def _ready_child(self, slot: _Slot) -> _Child:
        if slot.child is not None and slot.child.proc.returncode is None:
            return slot.child
        if slot.child is not None:  # died between jobs: reap it, then start afresh
            await self._discard(slot, ask_first=False)
        child = await self._spawn(slot.kind)
        slot.child = child
        try:
            reply = await asyncio.wait_for(child.call(self._setup(slot.kind)),
                                           self._load_timeout_s)
        except asyncio.CancelledError:
            await asyncio.shield(self._discard(slot, ask_first=False))
            raise
        except TimeoutError:
            await asyncio.shield(self._discard(slot, ask_first=False))
            raise ExecutorError(f"{slot.kind}: executor took over "
                                f"{self._load_timeout_s:g} s to load", retryable=True) from None
        except _ChildGone:
            how = await child.death()
            await self._discard(slot, ask_first=False)
            raise ExecutorError(f"{slot.kind}: executor crashed while loading: {how}",
                                retryable=True) from None
        if "ready" not in reply:
            await self._discard(slot, ask_first=True)
            raise ExecutorError(str(reply.get("failed", reply)), retryable=True)
        child.info = _info_from_json(reply["ready"])
        log.info("event=executor_ready kind=%s pid=%d version=%s model=%s", slot.kind,
                 child.pid, child.info.version, child.info.model_name)
        return child

    async def _execute(self, slot: _Slot, child: _Child, request: Mapping[str, object],
                       timeout_s: float) -> Execution:
        try:
            reply = await asyncio.wait_for(child.call(request), timeout_s)
        except TimeoutError:
            await asyncio.shield(self._discard(slot, ask_first=False))
            raise ExecutorError(f"timed out after {timeout_s:g} s", retryable=True) from None
        except asyncio.CancelledError:
            await asyncio.shield(self._discard(slot, ask_first=False))
            raise
        except _ChildGone:
            how = await child.death()
            tail = " | ".join(list(child.stderr_tail)[-3:])
            log.warning("event=executor_crashed kind=%s pid=%d how=%r stderr=%r",
                        slot.kind, child.pid, how, tail)
            await self._discard(slot, ask_first=False)
            raise ExecutorError(f"executor crashed: {how}", retryable=True) from None
        if "ok" in reply:
            return _execution_from_json(reply["ok"])
        raise ExecutorError(str(reply.get("error", reply)),
                            retryable=bool(reply.get("retryable", True)))

    def _discard(self, slot: _Slot, *, ask_first: bool) -> asyncio.Future[None]:
        """Empties the slot at once (the next job starts afresh) and stops its child in a
        task of its own: awaited through asyncio.shield, a second cancel of the caller cannot
        leave the child unreaped, and close() waits for it."""
        child, slot.child = slot.child, None
        if child is None:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        task = asyncio.create_task(child.stop(self._grace_s, ask_first=ask_first))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)
        return task

    async def _spawn(self, kind: str) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "photonic.agent.executors.child",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True)  # a Ctrl-C at the agent's terminal is the agent's to handle
        return _Child(kind, proc)

    def _setup(self, kind: str) -> dict[str, object]:
        return {"kind": kind, "models_dir": str(self._models_dir),
                "options": self._options[kind],
                "memory_limit_bytes": self._memory_limit_bytes, "agent_pid": os.getpid()}


def _max_concurrent(kind: str, options: Mapping[str, object]) -> int:
    value = options.get("max_concurrent", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{kind}: max_concurrent must be a whole number >= 1, not {value!r}")
    return value


def _info_from_json(raw: object) -> ExecutorInfo:
    if not isinstance(raw, dict):
        raise ExecutorError("the executor sent a malformed description", retryable=True)
    return ExecutorInfo(
        name=str(raw.get("name", "")), version=str(raw.get("version", "")),
        model_name=str(raw.get("model_name", "")), model_sha256=str(raw.get("model_sha256", "")),
        required_params=tuple(map(str, raw.get("required_params", ()))),
        extra_tags=tuple(map(str, raw.get("extra_tags", ()))))


def _execution_from_json(raw: object) -> Execution:
    if not isinstance(raw, dict):
        raise ExecutorError("the executor sent a malformed answer", retryable=True)
    outputs = [Output(path=Path(path), name=name) for path, name in raw.get("outputs", [])]
    details = raw.get("details", {})
    return Execution(outputs=outputs, details=details if isinstance(details, dict) else {})
