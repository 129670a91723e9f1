"""Lightroom Classic as a worker, end to end: a real server and a real worker agent (work
enabled, the bridge on loopback) over mutual TLS, and a client that speaks the bridge
protocol exactly as the plugin does. A job submitted on the server reaches the "plugin",
its progress renews the lease, its export becomes the job's output with its recipe; a cancel
reaches the plugin and its late completion is refused; a plugin that disconnects mid-job
hands the job back, and it completes once the plugin returns, once."""

from __future__ import annotations

import asyncio
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from photonic.lightroom.secret import load_or_make_secret
from tests.support.bridge_client import BridgeCallError, BridgeClient
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
)
from tests.support.jobs import Admin
from tests.support.lightroom import start_lightroom_worker
from tests.support.pki import TestPki
from tests.support.stored import job_rows, output_files

pytestmark = pytest.mark.e2e

DEVELOP = {"preset": "Photonic Vivid"}
EXPORT = {"format": "JPEG", "long_edge": 256, "quality": 80, "color_space": "sRGB"}


@pytest.fixture
def lightroom(tmp_path: Path, pki: TestPki, daemons: list[Daemon]
              ) -> tuple[ServerHandle, AgentHandle, str, list[str]]:
    """A server and the Lightroom machine's agent with two photos; the bridge URL too."""
    w = start_lightroom_worker(tmp_path, pki, daemons, client_timeout="3s", seed=40)
    return w.server, w.agent, w.url, w.shas


def _jpeg(path: Path, size: int = 200) -> Path:
    """An "export": a real JPEG, not the input's bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size // 2), (200, 120, 40)).save(buffer, "JPEG", quality=80)
    path.write_bytes(buffer.getvalue())
    return path


async def _plugin(url: str, secret: str) -> BridgeClient:
    client = BridgeClient(url, secret)
    await client.handshake()
    await client.register(lightroom_version="13.2")
    await client.subscribe("jobs", "system")
    return client


def _submit(server: ServerHandle, sha: str) -> str:
    admin = Admin(server)
    try:
        return admin.submit("lightroom", [sha], params={"develop": DEVELOP,
                                                        "export": EXPORT}).job_id
    finally:
        admin.close()


def _state(server: ServerHandle, job_id: str, *states: str, timeout_s: float = 30) -> Any:
    admin = Admin(server)
    try:
        return admin.wait_state(job_id, *states, timeout_s=timeout_s)
    finally:
        admin.close()


def test_a_job_reaches_the_plugin_and_its_export_becomes_the_output(
        lightroom: tuple[ServerHandle, AgentHandle, str, list[str]]) -> None:
    """Submitted on the server, assigned over the reverse connection, offered to the plugin
    with the photo's local path and a fresh export folder; progress renews the lease; the
    export is the job's output in _derived with its recipe."""
    server, agent, url, shas = lightroom

    async def main() -> None:
        secret = load_or_make_secret(agent.buffer)
        plugin = await _plugin(url, secret)
        try:
            job_id = await asyncio.to_thread(_submit, server, shas[0])
            job = await plugin.poll_for("job_assigned", 30)
            assert job["job_id"] == job_id and job["attempt"] == 1
            assert job["develop"] == DEVELOP and job["export"] == EXPORT
            assert Path(str(job["input_path"])).read_bytes() == (
                agent.watches["photos"] / "IMG_0.jpg").read_bytes()
            export_dir = Path(str(job["export_dir"]))
            await plugin.progress(job, 0.5, "rendering 1 of 1")
            await asyncio.to_thread(_state, server, job_id, "PROCESSING")
            exported = _jpeg(export_dir / "IMG_0-edit.jpg")
            expected = hashlib.sha256(exported.read_bytes()).hexdigest()
            await plugin.complete(job, [exported])
            done = await asyncio.to_thread(_state, server, job_id, "COMPLETED")
        finally:
            await plugin.close()
        [output] = done.outputs
        assert output.sha256 == expected and output.name == "IMG_0.jpg"
        assert output.library_path == "_derived/lightroom/desktop/photos/IMG_0.jpg.jpg"
        recipe = output.recipe
        assert recipe["executor"] == "lightroom" and recipe["worker"] == "desktop"
        details = recipe["details"]
        assert isinstance(details, dict)
        assert details["lightroom_version"] == "13.2" and details["preset"] == "Photonic Vivid"
        assert details["export"] == EXPORT
        assert output_files(server, "_derived/lightroom") == {output.library_path: expected}
    asyncio.run(main())


def test_cancel_reaches_the_plugin_and_a_gone_plugin_hands_the_job_back(
        lightroom: tuple[ServerHandle, AgentHandle, str, list[str]]) -> None:
    """A cancelled job reaches the plugin as job_cancelled and its late completion is
    refused; a plugin that disconnects mid-job hands the job back (PENDING, no failure) and
    it completes, once, when the plugin returns."""
    server, agent, url, shas = lightroom

    async def main() -> None:
        secret = load_or_make_secret(agent.buffer)
        plugin = await _plugin(url, secret)
        try:
            cancelled_id = await asyncio.to_thread(_submit, server, shas[0])
            job = await plugin.poll_for("job_assigned", 30)
            admin = Admin(server)
            await asyncio.to_thread(admin.cancel, cancelled_id)
            admin.close()
            notice = await plugin.poll_for("job_cancelled", 30)
            assert notice["job_id"] == cancelled_id
            late = _jpeg(Path(str(job["export_dir"])) / "late.jpg")
            with pytest.raises(BridgeCallError) as refused:
                await plugin.complete(job, [late])
            assert refused.value.status == 409
            await asyncio.to_thread(_state, server, cancelled_id, "CANCELLED")

            job_id = await asyncio.to_thread(_submit, server, shas[1])
            first = await plugin.poll_for("job_assigned", 30)
            assert first["job_id"] == job_id
            await plugin.disconnect()  # Lightroom quits mid-job
            back = await asyncio.to_thread(_state, server, job_id, "PENDING")
            assert "handed back" in back.progress_message
        finally:
            await plugin.close()
        plugin = await _plugin(url, secret)  # Lightroom is back
        try:
            again = await plugin.poll_for("job_assigned", 30)
            assert again["job_id"] == job_id and again["attempt"] == 2
            await plugin.complete(again, [_jpeg(Path(str(again["export_dir"])) / "x.jpg")])
            done = await asyncio.to_thread(_state, server, job_id, "COMPLETED")
        finally:
            await plugin.close()
        assert len(done.outputs) == 1
        failures = job_rows(server, "SELECT failures FROM jobs WHERE job_id = ?", (job_id,))
        assert failures[0][0] == 0
    asyncio.run(main())
