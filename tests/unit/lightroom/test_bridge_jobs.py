"""run_job through the real bridge: a job offered to one plugin, its progress, its checked
outputs, its failure, its cancellation, and the hand-back when the plugin goes."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from photonic.agent.executors.base import ExecutorError, HandBack
from tests.support.bridge_client import BridgeCallError, BridgeClient
from tests.unit.lightroom.world import World, bridge_world, jobs_held


def run(tmp_path: Path, scenario: Callable[[World], Awaitable[None]],
        client_timeout_s: float = 300.0) -> None:
    async def main() -> None:
        async with bridge_world(tmp_path, client_timeout_s) as world:
            await scenario(world)
    asyncio.run(main())


async def refused(call: Awaitable[object], status: int) -> str:
    with pytest.raises(BridgeCallError) as error:
        await call
    assert error.value.status == status, error.value
    return error.value.error


def test_full_cycle(tmp_path: Path) -> None:
    """assigned -> progress -> completed with a file in export_dir: run_job returns it."""
    async def scenario(world: World) -> None:
        plugin = await world.plugin()
        job = world.run_job("job-1", 2)
        assigned = await plugin.poll_for("job_assigned")
        assert assigned["develop"] == {"preset": "Vivid"}
        assert assigned["export"] == {"format": "JPEG", "long_edge": 2048, "quality": 90}
        assert (assigned["job_id"], assigned["attempt"]) == ("job-1", 2)
        assert assigned["input_path"] == "/photos/in.dng"
        export_dir = Path(str(assigned["export_dir"]))
        assert export_dir.parent == world.jobs_dir.resolve()
        assert stat.S_IMODE(export_dir.stat().st_mode) == 0o700
        await plugin.progress(assigned, 0.5, "exporting")
        assert world.progress == [(0.5, "exporting")]
        (export_dir / "in.jpg").write_bytes(b"jpeg")
        await plugin.complete(assigned, [export_dir / "in.jpg"])
        assert await job == [export_dir / "in.jpg"]
        assert (export_dir / "in.jpg").read_bytes() == b"jpeg"
        [row] = (await plugin.status())["clients"]
        assert row["jobs"] == 0
        await refused(plugin.progress(assigned, 0.9), 409)
    run(tmp_path, scenario)


def test_outputs_outside_export_dir_are_refused(tmp_path: Path) -> None:
    """A path outside export_dir, a symlink out of it, a missing file or a folder is refused
    400, and run_job keeps waiting for a good completion."""
    async def scenario(world: World) -> None:
        plugin = await world.plugin()
        job = world.run_job()
        assigned = await plugin.poll_for("job_assigned")
        export_dir = Path(str(assigned["export_dir"]))
        outside = tmp_path / "secret.txt"
        outside.write_text("not yours")
        (export_dir / "link.jpg").symlink_to(outside)
        (export_dir / "sub").mkdir()
        (export_dir / "ok.jpg").write_bytes(b"ok")
        for outputs in ([outside], [export_dir / "link.jpg"], [export_dir / "ok.jpg", outside],
                        [export_dir / ".." / "secret.txt"], [export_dir / "missing.jpg"],
                        [export_dir / "sub"], [export_dir], ["relative.jpg"]):
            await refused(plugin.complete(assigned, outputs), 400)
        assert not job.done()
        (export_dir / "inner.jpg").symlink_to(export_dir / "ok.jpg")
        await plugin.complete(assigned, [export_dir / "ok.jpg", export_dir / "inner.jpg"])
        assert await job == [export_dir / "ok.jpg", export_dir / "ok.jpg"]
    run(tmp_path, scenario)


def test_job_failed_is_an_executor_error(tmp_path: Path) -> None:
    """Lightroom's failure fails the attempt (not retryable) with Lightroom's message."""
    async def scenario(world: World) -> None:
        plugin = await world.plugin()
        job = world.run_job()
        assigned = await plugin.poll_for("job_assigned")
        await plugin.fail(assigned, "The preset 'Vivid' was not found.")
        with pytest.raises(ExecutorError, match="preset 'Vivid'") as error:
            await job
        assert error.value.retryable is False
    run(tmp_path, scenario)


def test_cancel_sends_job_cancelled_and_refuses_late_completion(tmp_path: Path) -> None:
    """Cancelling run_job queues job_cancelled for the plugin; its later job_completed is
    refused 409. A job cancelled before the plugin polled it is simply never delivered."""
    async def scenario(world: World) -> None:
        plugin = await world.plugin()
        job = world.run_job("job-1")
        assigned = await plugin.poll_for("job_assigned")
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        assert await plugin.poll(5) == [
            {"type": "job_cancelled", "job_id": "job-1", "attempt": 1}]
        done = Path(str(assigned["export_dir"])) / "in.jpg"
        done.write_bytes(b"late")
        assert "not assigned" in await refused(plugin.complete(assigned, [done]), 409)
        undelivered = world.run_job("job-2")
        await jobs_held(plugin)
        undelivered.cancel()
        with pytest.raises(asyncio.CancelledError):
            await undelivered
        assert await plugin.poll() == []
    run(tmp_path, scenario)


def test_no_plugin_hands_back_at_once(tmp_path: Path) -> None:
    """With no registered client subscribed to jobs, run_job raises HandBack at once and
    makes no folder."""
    async def scenario(world: World) -> None:
        client = world.client()
        await client.handshake()
        await client.register()  # registered, but not subscribed to jobs
        with pytest.raises(HandBack):
            await world.run_job()
        assert not world.jobs_dir.exists() or list(world.jobs_dir.iterdir()) == []
    run(tmp_path, scenario)


@pytest.mark.parametrize("how", ["disconnect", "stop"])
def test_plugin_gone_hands_back(tmp_path: Path, how: str) -> None:
    """A plugin that disconnects mid-job, or the bridge stopping, hands the job back."""
    async def scenario(world: World) -> None:
        plugin = await world.plugin()
        job = world.run_job()
        await plugin.poll_for("job_assigned")
        if how == "disconnect":
            await plugin.disconnect()
        else:
            await world.bridge.stop()
        with pytest.raises(HandBack, match=r"disconnected|stopped"):
            await job
        assert world.bridge.lightroom_version() is None
    run(tmp_path, scenario)


def test_silent_plugin_is_cleaned_up_and_its_job_handed_back(tmp_path: Path) -> None:
    """A client that neither polls nor sends for client_timeout_s is removed, its job handed
    back, and its next call told to handshake again."""
    async def scenario(world: World) -> None:
        plugin = await world.plugin()
        changes: list[str | None] = []
        world.bridge.on_change(lambda: changes.append(world.bridge.lightroom_version()))
        job = world.run_job()
        with pytest.raises(HandBack, match="silent"):
            await asyncio.wait_for(job, 10)
        assert changes == [None]
        assert "handshake again" in await refused(plugin.poll(), 404)
    run(tmp_path, scenario, client_timeout_s=0.3)


def test_two_plugins_a_job_goes_to_one(tmp_path: Path) -> None:
    """With two catalogs connected, each job is offered to one of them only; the next goes
    to the one holding fewer jobs."""
    async def scenario(world: World) -> None:
        plugins = [await world.plugin(catalog="One"), await world.plugin(catalog="Two")]
        first = world.run_job("job-1")
        await jobs_held(plugins[0], total=True)

        async def assigned_to(plugin: BridgeClient) -> list[str]:
            return [str(m["job_id"]) for m in await plugin.poll()
                    if m["type"] == "job_assigned"]

        got = [await assigned_to(p) for p in plugins]
        assert sorted(got) == [[], ["job-1"]]
        holder, other = plugins if got[0] else plugins[::-1]
        second = world.run_job("job-2")
        assert (await other.poll_for("job_assigned"))["job_id"] == "job-2"
        assert await assigned_to(holder) == []
        await holder.disconnect()
        with pytest.raises(HandBack):
            await first
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
    run(tmp_path, scenario)
