"""What a daemon's event loop is waiting on, written to its log on SIGUSR2.

A daemon that is alive but stuck (a stream that never ends, a sync that never moves) shows
nothing in a thread dump: its one thread sits idle in the event loop. What tells the story
is each asyncio task's chain of awaits, down to the future it waits for. `kill -USR2 PID`
logs that chain for every task, one record per task, without stopping anything."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from types import AsyncGeneratorType, CoroutineType, FrameType, GeneratorType

log = logging.getLogger("photonic.taskdump")

MAX_DEPTH = 40
MAX_TASKS = 500


def _frame_of(obj: object) -> FrameType | None:
    for name in ("cr_frame", "ag_frame", "gi_frame"):
        frame = getattr(obj, name, None)
        if isinstance(frame, FrameType):
            return frame
    return None


_STEPS = (asyncio.Future, AsyncGeneratorType, CoroutineType, GeneratorType)


def _awaited_by(obj: object) -> object | None:
    for name in ("cr_await", "ag_await", "gi_yieldfrom"):
        inner = getattr(obj, name, None)
        if inner is not None:
            return _unwrapped(inner)
    return None


def _unwrapped(obj: object) -> object:
    """What an awaitable wrapper stands for: `await future` leaves a future iterator in
    cr_await, and `async for` an asend object, neither of which names what it wraps except
    as a reference."""
    if isinstance(obj, _STEPS):
        return obj
    return next((r for r in gc.get_referents(obj) if isinstance(r, _STEPS)), obj)


def await_chain(coro: object) -> list[str]:
    """`file:line function` for each coroutine or generator in the chain, outermost first,
    ending with the future it waits on, if any. File names are shortened to their base name:
    the chain is for a log, and a package path adds nothing."""
    steps: list[str] = []
    obj: object | None = coro
    while obj is not None and len(steps) < MAX_DEPTH:
        frame = _frame_of(obj)
        if frame is not None:
            code = frame.f_code
            steps.append(f"{os.path.basename(code.co_filename)}:{frame.f_lineno} "
                         f"{code.co_qualname}")
        elif isinstance(obj, asyncio.Future):
            steps.append(f"waits on {obj!r}"[:300])
            break
        obj = _awaited_by(obj)
    return steps


def dump_tasks() -> int:
    """Logs every task of the running loop with its await chain; answers how many."""
    tasks = list(asyncio.all_tasks())[:MAX_TASKS]
    log.warning("task_dump tasks=%d", len(tasks))
    for task in tasks:
        chain = " <- ".join(reversed(await_chain(task.get_coro())))
        log.warning("task_dump_task name=%s chain=%s", task.get_name(), chain)
    log.warning("task_dump_end")
    return len(tasks)


def install(loop: asyncio.AbstractEventLoop) -> None:
    """SIGUSR2 logs the task dump (where the platform has the signal)."""
    usr2 = getattr(signal, "SIGUSR2", None)
    if usr2 is not None:
        loop.add_signal_handler(usr2, dump_tasks)
