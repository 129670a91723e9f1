"""The worker's executors as one pool: lightroom advertised only while a plugin is there,
its jobs routed to the bridge with their ids and progress, exports named after the input,
hand-backs and time limits; other kinds go to the child pool."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from photonic.agent.executors.base import ExecutorError, HandBack, JobTicket
from photonic.agent.work.routing import RoutingPool
from tests.unit.agent.work.fakes import FakePool


class FakeBridge:
    def __init__(self, root: Path) -> None:
        self.version: str | None = None
        self.listeners: list[Callable[[], None]] = []
        self.root = root
        self.started = self.stopped = False
        self.jobs: list[tuple[str, int, Mapping[str, object], Mapping[str, object]]] = []
        self.hand_back = False
        self.hang = False

    def lightroom_version(self) -> str | None:
        return self.version

    def on_change(self, callback: Callable[[], None]) -> None:
        self.listeners.append(callback)

    async def start(self) -> int:
        self.started = True
        return 7777

    async def stop(self) -> None:
        self.stopped = True

    async def run_job(self, job_id: str, attempt: int, input_path: Path,
                      develop: Mapping[str, object], export: Mapping[str, object],
                      progress: Callable[[float, str], None]) -> list[Path]:
        self.jobs.append((job_id, attempt, develop, export))
        progress(0.5, "rendering")
        if self.hand_back:
            raise HandBack("the Lightroom plugin disconnected")
        if self.hang:
            await asyncio.Event().wait()
        folder = self.root / f"{job_id}-{attempt}"
        folder.mkdir(parents=True)
        out = folder / "Lightroom Export.JPG"
        out.write_bytes(b"exported")
        return [out]


def _run(main: Callable[[], object]) -> None:
    asyncio.run(main())  # type: ignore[arg-type]


def test_lightroom_is_offered_only_while_a_plugin_is_registered(tmp_path: Path) -> None:
    async def main() -> None:
        bridge = FakeBridge(tmp_path)
        pool = RoutingPool(FakePool(), bridge)
        assert [i.name for i in await pool.probe()] == ["bgremove"] and bridge.started
        bridge.version = "13.2"
        infos = {i.name: i for i in await pool.probe()}
        assert infos["lightroom"].extra_tags == ("lightroom=13.2",)
        changed: list[bool] = []
        pool.on_change(lambda: changed.append(True))
        for listener in bridge.listeners:
            listener()
        assert changed == [True]
        await pool.close()
        assert bridge.stopped
    _run(main)


def test_a_lightroom_job_goes_to_the_bridge_and_its_export_is_named_after_the_input(
        tmp_path: Path) -> None:
    async def main() -> None:
        bridge = FakeBridge(tmp_path / "bridge")
        bridge.version = "13.2"
        pool = RoutingPool(FakePool(), bridge)
        seen: list[tuple[float, str]] = []
        ticket = JobTicket("j1", 2, lambda f, m: seen.append((f, m)))
        params = {"develop": {"preset": "Vivid", "settings": {"Exposure2012": 0.5}},
                  "export": {"format": "JPEG", "quality": 90}}
        execution = await pool.run("lightroom", tmp_path / "IMG_1.CR3", tmp_path / "out",
                                   params, timeout_s=30, ticket=ticket)
        [output] = execution.outputs
        assert output.name == "IMG_1.jpg" and output.path.read_bytes() == b"exported"
        assert output.path.parent == tmp_path / "out"
        assert not (tmp_path / "bridge" / "j1-2").exists()
        assert bridge.jobs == [("j1", 2, params["develop"], params["export"])]
        assert seen == [(0.5, "rendering")]
        assert execution.details["preset"] == "Vivid"
        assert execution.details["lightroom_version"] == "13.2"
        assert len(str(execution.details["settings_sha256"])) == 64
    _run(main)


def test_hand_back_and_time_limit(tmp_path: Path) -> None:
    """A plugin that went away hands the job back (not failed); one that never finishes is
    stopped at the job's time limit with a retryable failure."""
    async def main() -> None:
        bridge = FakeBridge(tmp_path)
        bridge.version = "13.2"
        pool = RoutingPool(FakePool(), bridge)
        ticket = JobTicket("j1", 1, lambda f, m: None)
        bridge.hand_back = True
        with pytest.raises(HandBack):
            await pool.run("lightroom", tmp_path / "a.jpg", tmp_path / "o", {}, timeout_s=5,
                           ticket=ticket)
        bridge.hand_back, bridge.hang = False, True
        with pytest.raises(ExecutorError, match="did not finish") as late:
            await pool.run("lightroom", tmp_path / "a.jpg", tmp_path / "o", {},
                           timeout_s=0.05, ticket=ticket)
        assert late.value.retryable
        no_bridge = RoutingPool(FakePool(), None)
        with pytest.raises(ExecutorError, match="not enabled"):
            await no_bridge.run("lightroom", tmp_path / "a.jpg", tmp_path / "o", {},
                                timeout_s=5, ticket=ticket)
    _run(main)
