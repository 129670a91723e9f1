"""The whole chain with the plugin's own Lua: a real server, a real worker agent serving the
bridge, and Photonic.lrplugin under lua5.1 (stub Lightroom SDK), over mutual TLS. A develop
and export job submitted on the server completes with a real JPEG rendered by the plugin;
Lightroom killed mid-job hands the job back and a restarted plugin completes it, once."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from photonic.lightroom.secret import load_or_make_secret
from tests.lightroom.harness import LUA, LuaPlugin
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    sqlite_rows,
    wait_until,
)
from tests.support.jobs import Admin
from tests.support.lightroom import start_lightroom_worker
from tests.support.pki import TestPki

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    LUA is None, reason="lua5.1 is not installed: run `make test-deps` (Debian lua5.1 and "
                        "lua-socket)")]

EXPORT = {"format": "JPEG", "long_edge": 320, "quality": 85}


@pytest.fixture
def chain(tmp_path: Path, pki: TestPki, daemons: list[Daemon]
          ) -> tuple[ServerHandle, AgentHandle, int, list[str]]:
    w = start_lightroom_worker(tmp_path, pki, daemons, client_timeout="2s", seed=70)
    return w.server, w.agent, w.port, w.shas


def _submit(server: ServerHandle, sha: str, preset: str) -> str:
    admin = Admin(server)
    try:
        return admin.submit("lightroom", [sha], params={
            "develop": {"preset": preset}, "export": EXPORT}).job_id
    finally:
        admin.close()


def _wait(server: ServerHandle, job_id: str, *states: str, timeout_s: float = 60) -> object:
    admin = Admin(server)
    try:
        return admin.wait_state(job_id, *states, timeout_s=timeout_s)
    finally:
        admin.close()


def test_the_lua_plugin_develops_and_exports_a_job_submitted_on_the_server(
        chain: tuple[ServerHandle, AgentHandle, int, list[str]], tmp_path: Path) -> None:
    """Server -> worker agent -> bridge -> plugin (lua5.1) and back: the job completes with
    a JPEG the plugin rendered (resized to the export's long edge), stored in _derived."""
    server, agent, port, shas = chain
    plugin = LuaPlugin(tmp_path / "lr", port, secret=load_or_make_secret(agent.buffer))
    try:
        job_id = _submit(server, shas[0], "Photonic Bright")
        done = _wait(server, job_id, "COMPLETED", "FAILED")
    finally:
        plugin.kill()
    assert done.state.value == "COMPLETED", plugin.log()[-3000:]
    [output] = done.outputs
    stored = server.storage / "library" / output.library_path
    with Image.open(stored) as image:
        assert image.format == "JPEG" and max(image.size) == 320
    assert stored.read_bytes() != (agent.watches["photos"] / "IMG_0.jpg").read_bytes()
    assert output.recipe["details"]["preset"] == "Photonic Bright"


def test_lightroom_killed_mid_job_hands_it_back_and_the_restarted_plugin_completes_it(
        chain: tuple[ServerHandle, AgentHandle, int, list[str]], tmp_path: Path) -> None:
    """The Lua process SIGKILLed while it renders: the bridge notices the silence, the job
    goes back to the server unfailed, and a new plugin process completes it once."""
    server, agent, port, shas = chain
    secret = load_or_make_secret(agent.buffer)
    slow = LuaPlugin(tmp_path / "lr1", port, render_delay_s=30, secret=secret)
    try:
        job_id = _submit(server, shas[1], "Photonic Bright")
        wait_until(lambda: "job_started" in slow.log(), 30,
                   message="the plugin rendering the job")
    finally:
        slow.kill()
    back = _wait(server, job_id, "PENDING", timeout_s=30)
    assert "handed back" in back.progress_message
    again = LuaPlugin(tmp_path / "lr2", port, secret=secret)
    try:
        done = _wait(server, job_id, "COMPLETED")
    finally:
        again.kill()
    assert done.attempts == 2 and len(done.outputs) == 1
    failures = sqlite_rows(server.storage / "jobs.db",
                           "SELECT failures FROM jobs WHERE job_id = ?", (job_id,))
    assert failures[0][0] == 0
    derived = [p for p in (server.storage / "library" / "_derived").rglob("*") if p.is_file()]
    assert len(derived) == 1
