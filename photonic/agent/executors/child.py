"""The executor child process: `python -m photonic.agent.executors.child`. It loads one
executor (mediapipe's import and the model, once) and then serves jobs one at a time over its
stdin/stdout, so a model that crashes, hangs or eats memory takes down only this process.

Framing, both ways: a 4-byte big-endian length, then that many bytes of JSON.
  agent -> child, first:  {"kind", "models_dir", "options", "memory_limit_bytes", "agent_pid"}
  child -> agent:         {"ready": ExecutorInfo} | {"failed": message}
  agent -> child, then:   {"input", "output_dir", "params"}   (one at a time)
  child -> agent:         {"ok": {"outputs": [[path, name]...], "details": {...}}}
                          | {"error": message, "retryable": bool}
End of stdin ends the child."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import resource
import signal
import struct
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from photonic.agent.executors.base import Execution, ExecutorError
from photonic.agent.executors.registry import LoadedExecutor, load_executor

_HEADER = struct.Struct(">I")
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_PR_SET_PDEATHSIG = 1


def write_message(stream: BinaryIO, message: Mapping[str, object]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def read_message(stream: BinaryIO) -> dict[str, object] | None:
    """The next message, or None at a clean end of stream."""
    header = stream.read(_HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise EOFError("truncated message header")
    (size,) = _HEADER.unpack(header)
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {size} bytes is too large")
    body = stream.read(size)
    if len(body) < size:
        raise EOFError("truncated message")
    decoded = json.loads(body)
    if not isinstance(decoded, dict):
        raise ValueError("a message must be a JSON object")
    return decoded


def _isolate(memory_limit_bytes: int | None, agent_pid: int | None) -> None:
    """Die with the agent (no orphaned model eating a core), and cap the address space."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if agent_pid is not None and os.getppid() != agent_pid:
            os._exit(1)  # the agent died before prctl took effect
    if memory_limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))


def _execution_message(execution: Execution) -> dict[str, object]:
    return {"ok": {"outputs": [[str(o.path), o.name] for o in execution.outputs],
                   "details": dict(execution.details)}}


def _serve(stdin: BinaryIO, stdout: BinaryIO) -> int:
    setup = read_message(stdin)
    if setup is None:
        return 0
    limit, agent_pid = setup.get("memory_limit_bytes"), setup.get("agent_pid")
    _isolate(limit if isinstance(limit, int) else None,
             agent_pid if isinstance(agent_pid, int) else None)
    options = setup.get("options")
    try:
        executor = load_executor(str(setup["kind"]), Path(str(setup["models_dir"])),
                                 options if isinstance(options, dict) else {})
    except Exception as exc:  # any failure to load is reported, never a traceback alone
        reason = str(exc) if isinstance(exc, ExecutorError) else _describe(exc)
        write_message(stdout, {"failed": reason})
        return 0
    write_message(stdout, {"ready": dataclasses.asdict(executor.info)})
    while (request := read_message(stdin)) is not None:
        write_message(stdout, _run_one(executor, request))
    executor.close()
    return 0


def _run_one(executor: LoadedExecutor, request: Mapping[str, object]) -> dict[str, object]:
    params = request.get("params")
    try:
        execution = executor.run(Path(str(request["input"])), Path(str(request["output_dir"])),
                                 params if isinstance(params, dict) else {})
        return _execution_message(execution)
    except ExecutorError as exc:
        return {"error": str(exc), "retryable": exc.retryable}
    except MemoryError:
        return {"error": "executor ran out of memory", "retryable": True}
    except Exception as exc:
        # A bug or an environment fault, not known to be the input's: worth another attempt.
        traceback.print_exc(file=sys.stderr)
        return {"error": f"executor failed: {_describe(exc)}", "retryable": True}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def main() -> int:
    """Keeps the protocol's stdout private: fd 1 is pointed at stderr so whatever a library
    prints (mediapipe and TFLite log freely) cannot corrupt a message."""
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the agent decides when its children stop
    return _serve(sys.stdin.buffer, protocol_out)


if __name__ == "__main__":
    sys.exit(main())
