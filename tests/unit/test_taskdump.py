"""The SIGUSR2 task dump: each task's chain of awaits down to the future it waits on, so a
daemon that is alive but stuck says where (a thread dump shows only an idle event loop)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from photonic import taskdump


async def _innermost(gate: asyncio.Event) -> None:
    await gate.wait()


async def _middle(gate: asyncio.Event) -> None:
    await _innermost(gate)


def test_the_dump_names_every_coroutine_down_to_the_awaited_future(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> int:
        gate = asyncio.Event()
        stuck = asyncio.create_task(_middle(gate), name="stuck-stream")
        await asyncio.sleep(0)
        with caplog.at_level(logging.WARNING, logger="photonic.taskdump"):
            count = taskdump.dump_tasks()
        gate.set()
        await stuck
        return count

    count = asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == f"task_dump tasks={count}" and lines[-1] == "task_dump_end"
    stuck = next(line for line in lines if "name=stuck-stream" in line)
    # innermost first: the future, then _innermost, then _middle
    assert stuck.index("waits on <Future pending") < stuck.index("_innermost")
    assert stuck.index("_innermost") < stuck.index("_middle")
    assert "test_taskdump.py:" in stuck and "/" not in stuck.split("chain=")[1].split(" ")[0]


def test_an_async_generator_in_the_chain_is_followed() -> None:
    async def scenario() -> list[str]:
        gate = asyncio.Event()

        async def replies() -> AsyncIterator[int]:
            await gate.wait()
            yield 1

        async def consume() -> None:
            async for _ in replies():
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        chain = taskdump.await_chain(task.get_coro())
        gate.set()
        await task
        return chain

    chain = asyncio.run(scenario())
    assert [step.split(" ")[1] for step in chain[:2]] == [
        "test_an_async_generator_in_the_chain_is_followed.<locals>.scenario.<locals>.consume",
        "test_an_async_generator_in_the_chain_is_followed.<locals>.scenario.<locals>.replies"]
    assert chain[-1].startswith("waits on <Future pending")
