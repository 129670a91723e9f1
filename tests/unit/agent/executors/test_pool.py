"""The executor pool: real child processes with real models, killed and replaced when a job
is cancelled, times out or its child dies. A job hangs for real by reading a named pipe no
one writes to (the child blocks in open(), as it would on a stuck network mount)."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from photonic.agent.executors.base import ExecutorError
from photonic.agent.executors.pool import ExecutorPool

T = TypeVar("T")
GRACE_S = 2.0


def _run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()
    return asyncio.run(main())


async def _stuck_in(fifo: Path, writers: list[int], timeout_s: float = 30.0) -> None:
    """Returns once the child has opened fifo; a writer is then held open (and never
    written), so the child stays blocked reading until it is killed."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            writers.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            return
        except OSError as exc:
            assert exc.errno == errno.ENXIO  # no reader yet
        assert time.monotonic() < deadline, "the child never opened the input"
        await asyncio.sleep(0.02)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def writers() -> Iterator[list[int]]:
    held: list[int] = []
    yield held
    for fd in held:
        os.close(fd)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "stuck.jpg"
    os.mkfifo(path)
    return path


def _pool(models_dir: Path, **options: object) -> ExecutorPool:
    return ExecutorPool(models_dir, None, {}, memory_limit_bytes=2 * 1024**3,
                        grace_s=GRACE_S, **options)  # type: ignore[arg-type]


def test_probe_lists_both_with_models(models_dir: Path) -> None:
    """With the models present, both executors load (in their children) and are listed."""
    async def main() -> list[str]:
        pool = _pool(models_dir)
        try:
            infos = await pool.probe()
            assert await pool.probe() == infos  # cached
            assert all(len(p) == 1 for p in pool.child_pids().values())
            return [i.name for i in infos]
        finally:
            await pool.close()
    assert _run(main) == ["bgremove", "facecrop"]


def test_probe_lists_none_without_models(tmp_path: Path) -> None:
    """An empty models folder: nothing is listed, each problem says to fetch, no child
    lingers, and a job of that kind fails retryably."""
    async def main() -> None:
        pool = _pool(tmp_path)
        try:
            assert await pool.probe() == []
            assert set(pool.problems) == {"bgremove", "facecrop"}
            assert all("photonic models fetch" in p for p in pool.problems.values())
            assert pool.child_pids() == {"bgremove": [], "facecrop": []}
            with pytest.raises(ExecutorError) as caught:
                await pool.run("bgremove", tmp_path / "x.jpg", tmp_path, {}, timeout_s=10)
            assert caught.value.retryable
        finally:
            await pool.close()
    _run(main)


def test_children_serve_many_jobs_and_errors_pass_through(
        models_dir: Path, astronaut: Path, out_dir: Path, tmp_path: Path) -> None:
    """One child serves job after job (same pid); an executor's own error (no face) comes
    back with its retryable flag and leaves the child in service."""
    from tests.support.models import gray_jpeg

    async def main() -> None:
        pool = _pool(models_dir)
        try:
            first = await pool.run("facecrop", astronaut, out_dir, {}, timeout_s=30)
            pid = pool.child_pids()["facecrop"]
            with pytest.raises(ExecutorError, match="no face found") as caught:
                await pool.run("facecrop", gray_jpeg(tmp_path / "g.jpg"), out_dir, {},
                               timeout_s=30)
            assert not caught.value.retryable
            again = await pool.run("facecrop", astronaut, out_dir, {}, timeout_s=30)
            assert pool.child_pids()["facecrop"] == pid
            assert first.details["faces"] == again.details["faces"]
            assert first.outputs[0].path.is_file()
        finally:
            await pool.close()
        assert pool.child_pids() == {"bgremove": [], "facecrop": []}
        assert _gone(pid[0])
    _run(main)


def test_cancel_kills_the_child_within_grace(models_dir: Path, fifo: Path, writers: list[int],
                                             astronaut: Path, out_dir: Path) -> None:
    """Cancelling the awaiting task stops the child (gone within the grace) and the next
    job of that kind runs in a fresh child."""
    async def main() -> None:
        pool = _pool(models_dir)
        try:
            job = asyncio.create_task(
                pool.run("bgremove", fifo, out_dir, {}, timeout_s=60))
            await _stuck_in(fifo, writers)
            [pid] = pool.child_pids()["bgremove"]
            started = time.monotonic()
            job.cancel()
            with pytest.raises(asyncio.CancelledError):
                await job
            assert time.monotonic() - started < GRACE_S
            assert _gone(pid)
            done = await pool.run("bgremove", astronaut, out_dir, {}, timeout_s=30)
            assert done.outputs[0].path.is_file()
            assert pool.child_pids()["bgremove"] != [pid]
        finally:
            await pool.close()
    _run(main)


def test_child_killed_mid_job_is_a_retryable_crash(models_dir: Path, fifo: Path, writers: list[int],
                                                   astronaut: Path, out_dir: Path) -> None:
    """SIGKILL of the child during a job: "executor crashed: signal 9", retryable; the next
    job works."""
    async def main() -> None:
        pool = _pool(models_dir)
        try:
            job = asyncio.create_task(
                pool.run("facecrop", fifo, out_dir, {}, timeout_s=60))
            await _stuck_in(fifo, writers)
            [pid] = pool.child_pids()["facecrop"]
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(ExecutorError) as caught:
                await job
            assert str(caught.value) == "executor crashed: signal 9"
            assert caught.value.retryable
            await pool.run("facecrop", astronaut, out_dir, {}, timeout_s=30)
        finally:
            await pool.close()
    _run(main)


def test_timeout_kills_the_child(models_dir: Path, fifo: Path, astronaut: Path,
                                 out_dir: Path) -> None:
    """A job past its timeout fails retryably as "timed out after N s", its child is gone,
    and the next job works."""
    async def main() -> None:
        pool = _pool(models_dir)
        try:
            await pool.probe()
            [pid] = pool.child_pids()["bgremove"]
            with pytest.raises(ExecutorError) as caught:
                await pool.run("bgremove", fifo, out_dir, {}, timeout_s=0.5)
            assert str(caught.value) == "timed out after 0.5 s" and caught.value.retryable
            assert _gone(pid)
            await pool.run("bgremove", astronaut, out_dir, {}, timeout_s=30)
        finally:
            await pool.close()
    _run(main)


def test_two_children_run_two_jobs_at_once(models_dir: Path, fifo: Path, writers: list[int],
                                           astronaut: Path, out_dir: Path) -> None:
    """max_concurrent 2: a job stuck in one child does not hold up the next job."""
    async def main() -> None:
        pool = ExecutorPool(models_dir, ["facecrop"], {"facecrop": {"max_concurrent": 2}},
                            memory_limit_bytes=None, grace_s=GRACE_S)
        try:
            stuck = asyncio.create_task(pool.run("facecrop", fifo, out_dir, {}, timeout_s=60))
            await _stuck_in(fifo, writers)
            await pool.run("facecrop", astronaut, out_dir, {}, timeout_s=30)
            assert len(pool.child_pids()["facecrop"]) == 2
            stuck.cancel()
            with pytest.raises(asyncio.CancelledError):
                await stuck
        finally:
            await pool.close()
    _run(main)
