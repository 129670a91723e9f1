"""Live updates of the dashboard on real daemons over real mTLS: event ids that a server
restart numbers again (the epoch tells a resuming client to read everything again), job
progress as throttled `job_progress` events (a scripted worker that reports a burst, and a
real worker running the real face-crop model), and each agent's receive rate and time left
on /api/v1/agents during a throttled sync."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from photonic.jobs_model import WorkDone, WorkProgress
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    free_port,
    make_agent,
    start_server,
    wait_until,
    web_token,
)
from tests.support.jobs import ScriptedWorker
from tests.support.models import astronaut_jpeg, fetched_models
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import catalog_is_embedded

pytestmark = pytest.mark.e2e

SCOPES = {"admin": {"scopes": ["admin"]}, "worker": {"scopes": ["sync", "work"]}}
RUNNING = ("READING", "PROCESSING")
Event = dict[str, Any]


@dataclass
class Web:
    server: ServerHandle
    token: str
    epoch: str = ""
    last_id: int = 0
    seen: list[Event] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            headers = {"Authorization": f"Bearer {self.token}"}
            async with aiohttp.ClientSession() as s, s.request(
                    method, self.base + path, headers=headers, **kwargs) as r:
                return r.status, await r.json()
        return asyncio.run(go())

    def poll(self, query: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/api/v1/events?{query}")
        assert status == 200, body
        reply: dict[str, Any] = body
        return reply

    def follow(self, until: Callable[[list[Event]], bool], timeout_s: float = 60) -> list[Event]:
        """Long-polls from where the last call stopped, as the dashboard does, keeping every
        event in seen, until until(seen) holds."""
        def more() -> bool:
            reply = self.poll(f"after={self.last_id}&epoch={self.epoch}&timeout=5")
            assert not reply["reset"], reply
            self.seen.extend(reply["events"])
            self.last_id = reply["last_id"]
            return until(self.seen)
        wait_until(more, timeout_s, 0, "the expected events")
        return self.seen

    def start_following(self) -> None:
        reply = self.poll("timeout=0")
        self.epoch, self.last_id, self.seen = reply["epoch"], reply["last_id"], []

    def agent(self, agent_id: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/api/v1/agents/{agent_id}")
        assert status == 200, body
        found: dict[str, Any] = body
        return found


def _web(root: Path, pki: TestPki, daemons: list[Daemon], **extra: Any) -> Web:
    port = free_port()
    server = start_server(root / "server", pki, extra={
        "server": {"web_ui_port": port}, "agents": SCOPES, **extra})
    daemons.append(server.daemon)
    server.http_port = port
    return Web(server, web_token(server, "ops"))


def _of_job(events: list[Event], job_id: str, kind: str) -> list[Event]:
    return [e for e in events if e["job_id"] == job_id and e["kind"] == kind]


# --- event ids across a restart ------------------------------------------------------------


def test_a_client_resuming_after_a_server_restart_is_told_to_read_everything_again(
        tmp_path: Path, pki: TestPki, daemons: list[Daemon]) -> None:
    """A client holds an id and the epoch of the first server process; after a restart the
    new process numbers from 1 again under another epoch. A long-poll with the old epoch
    answers at once with reset true and the new process's events from the start of its
    ring; resumed with the new epoch, the next event arrives as usual. A WebSocket opened
    with the old epoch says the same in its hello message, then sends the ring; one opened
    with the current epoch says reset false. An id beyond the last one given, named without
    an epoch (an older client), is a reset too. (With a PostgreSQL catalog the hub is the
    database's: the old id resumes the client, no reset.)"""
    web = _web(tmp_path, pki, daemons)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", web.server)
    for i in range(3):
        make_jpeg(agent.watches["photos"] / f"p{i}.jpg", seed=40 + i)
    assert agent.once()["files_uploaded"] == 3
    before = web.poll("after=0&timeout=0")
    assert before["reset"] is False and len(before["events"]) >= 4  # registered, 3 commits
    old_epoch, old_last = before["epoch"], before["last_id"]

    web.server.daemon.terminate()
    web.server.start()
    assert web.call("POST", "/api/v1/agents/laptop/pause", json={"paused": True})[0] == 200
    if not catalog_is_embedded(web.server):
        # On a PostgreSQL catalog the event hub and its epoch are the database's: the old
        # id resumes the client across the restart, with no reset.
        resumed_across = web.poll(f"after={old_last}&epoch={old_epoch}&timeout=25")
        assert (resumed_across["reset"], resumed_across["epoch"]) == (False, old_epoch)
        assert [(e["kind"], e["detail"]) for e in resumed_across["events"]] == [
            ("paused", "True")]
        assert resumed_across["events"][0]["id"] > old_last
        return
    reset = web.poll(f"after={old_last}&epoch={old_epoch}&timeout=25")
    assert reset["reset"] is True and reset["epoch"] != old_epoch
    assert [(e["id"], e["kind"], e["detail"]) for e in reset["events"]] == [
        (1, "paused", "True")]
    assert reset["last_id"] == 1

    web.epoch, web.last_id = reset["epoch"], reset["last_id"]
    web.call("POST", "/api/v1/agents/laptop/pause", json={"paused": False})
    resumed = web.follow(lambda seen: bool(seen))
    assert [(e["id"], e["kind"], e["detail"]) for e in resumed] == [(2, "paused", "False")]

    async def ws(query: str, count: int) -> list[Event]:
        headers = {"Authorization": f"Bearer {web.token}"}
        async with aiohttp.ClientSession() as s, s.ws_connect(
                f"{web.base}/api/v1/ws?{query}", headers=headers) as sock:
            return [await sock.receive_json(timeout=10) for _ in range(count)]

    hello, *ring = asyncio.run(ws(f"after={old_last}&epoch={old_epoch}", 3))
    assert hello == {"kind": "hello", "epoch": web.epoch, "last_id": 0, "reset": True}
    assert [e["id"] for e in ring] == [1, 2]
    [hello] = asyncio.run(ws(f"after=2&epoch={web.epoch}", 1))
    assert hello == {"kind": "hello", "epoch": web.epoch, "last_id": 2, "reset": False}
    legacy = web.poll(f"after={old_last}&timeout=25")
    assert legacy["reset"] is True and [e["id"] for e in legacy["events"]] == [1, 2]


# --- job progress ----------------------------------------------------------------------------


def test_a_burst_of_progress_reports_ends_with_the_last_one_and_one_state_change(
        tmp_path: Path, pki: TestPki, daemons: list[Daemon]) -> None:
    """A worker that reports progress 40 times in a burst (as the Lightroom plugin does per
    rendition): /api/v1/events carries job_progress events for the job (job_id, job_state,
    detail {"fraction", "message"}) in the order reported, the last one the last report
    (held back by the throttle, never dropped), and PROCESSING as a state change once, not
    once per report. Once the job is COMPLETED no progress event for it follows."""
    web = _web(tmp_path, pki, daemons)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", web.server)
    make_jpeg(agent.watches["photos"] / "p.jpg", seed=7)
    assert agent.once()["files_uploaded"] == 1
    worker = ScriptedWorker(web.server, "worker", ["bgremove"])
    try:
        web.start_following()
        status, job = web.call("POST", "/api/v1/jobs", json={
            "kind": "bgremove", "library_paths": ["laptop/photos/p.jpg"]})
        assert status == 201, job
        job_id = job["jobId"]
        leased = worker.next_assignment().job
        attempt = leased.attempts
        worker.send(WorkProgress(job_id, attempt, 0.0, "reading input"))
        worker.send(WorkProgress(job_id, attempt, 0.1, "processing", processing=True))
        for i in range(40):
            worker.send(WorkProgress(job_id, attempt, (i + 1) / 40, f"rendition {i + 1}",
                                     processing=True))
        seen = web.follow(lambda seen: any(
            json.loads(e["detail"])["message"] == "rendition 40"
            for e in _of_job(seen, job_id, "job_progress")))
        progress = _of_job(seen, job_id, "job_progress")
        details = [json.loads(e["detail"]) for e in progress]
        assert details[0] == {"fraction": 0.0, "message": "reading input"}
        assert progress[0]["job_state"] == "READING"
        assert details[-1] == {"fraction": 1.0, "message": "rendition 40"}
        assert progress[-1]["job_state"] == "PROCESSING"
        assert [d["fraction"] for d in details] == sorted(d["fraction"] for d in details)
        states = [e["job_state"] for e in _of_job(seen, job_id, "job")]
        assert states.count("PROCESSING") == 1, states

        output = worker.upload(leased, b"cut-out" * 100, "p.png")
        worker.send(WorkDone(job_id, attempt, (output,)))
        seen = web.follow(lambda seen: "COMPLETED" in [
            e["job_state"] for e in _of_job(seen, job_id, "job")])
        done_at = next(i for i, e in enumerate(seen)
                       if e["job_id"] == job_id and e["job_state"] == "COMPLETED")
        assert not _of_job(seen[done_at:], job_id, "job_progress")
    finally:
        worker.close()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fetched_models(tmp_path_factory.mktemp("models"))


def test_a_real_worker_s_progress_arrives_as_events_while_its_job_runs(
        tmp_path: Path, pki: TestPki, daemons: list[Daemon], models: Path) -> None:
    """A real worker agent runs the real face-crop model on a photo posted to
    /api/v1/uploads: while the job runs, /api/v1/events carries job_progress events for it
    (a running state, a fraction, the worker's message), before its COMPLETED state."""
    web = _web(tmp_path, pki, daemons)
    worker = make_agent(tmp_path / "worker", pki, "worker", web.server,
                        {"w": tmp_path / "worker" / "w"},
                        extra={"work": {"enabled": True, "models_dir": str(models),
                                        "executors": ["facecrop"]}})
    daemons.append(worker.daemon)
    worker.start()
    wait_until(lambda: any(w["worker_id"] == "worker"
                           for w in web.call("GET", "/api/v1/topology")[1]["workers"]),
               90, 0.2, f"the worker connected; log:\n{worker.daemon.log()[-2000:]}")
    photo = astronaut_jpeg(tmp_path / "astronaut.jpg").read_bytes()
    web.start_following()
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("kind", "facecrop")
    form.add_field("params", "{}")
    form.add_field("file", photo, filename="astronaut.jpg", content_type="image/jpeg")
    status, batch = web.call("POST", "/api/v1/uploads", data=form)
    assert status == 201, batch
    seen = web.follow(lambda seen: any(
        e["kind"] == "job" and e["job_id"] == batch["jobId"] and e["job_state"] == "COMPLETED"
        for e in seen), 180)
    progress = [e for e in seen if e["kind"] == "job_progress"]
    assert progress, [(e["kind"], e["job_state"]) for e in seen]
    assert {e["job_state"] for e in progress} <= set(RUNNING)
    assert {e["agent_id"] for e in progress} == {"worker"}
    for e in progress:
        detail = json.loads(e["detail"])
        assert 0.0 <= detail["fraction"] <= 1.0 and detail["message"]
    child = progress[0]["job_id"]
    assert child != batch["jobId"]
    child_done = next(i for i, e in enumerate(seen) if e["kind"] == "job"
                      and e["job_id"] == child and e["job_state"] == "COMPLETED")
    assert seen.index(progress[0]) < child_done


# --- receive rate and time left ------------------------------------------------------------


@pytest.fixture
def throttled(tmp_path: Path, pki: TestPki, daemons: list[Daemon]) -> Iterator[
        tuple[Web, AgentHandle]]:
    web = _web(tmp_path, pki, daemons)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", web.server, extra={
        "network": {"max_bandwidth": "1MB/s", "chunk_size": "64KiB"}})
    daemons.append(agent.daemon)
    agent.start()
    yield web, agent


def test_the_overview_shows_each_agent_s_rate_and_time_left_during_a_throttled_sync(
        throttled: tuple[Web, AgentHandle]) -> None:
    """An agent held to 1 MB/s: paused by an admin, it reports about 9 MB waiting; resumed,
    /api/v1/agents shows a rate above 0 (bytes received over the last 30 s) and a number of
    seconds left (bytes pending / rate) while it uploads; before any byte came the rate was
    0 and the time left null (unknown)."""
    web, agent = throttled
    wait_until(lambda: web.call("GET", "/api/v1/agents")[1]["agents"], 60, 0.2,
               "the agent registered")
    assert web.call("POST", "/api/v1/agents/laptop/pause", json={"paused": True})[0] == 200
    for i in range(6):
        make_jpeg(agent.watches["photos"] / f"big{i}.jpg", seed=90 + i,
                  target_bytes=1_500_000)
    waiting = wait_until(lambda: (a := web.agent("laptop"))["bytes_pending"] >= 8_000_000
                         and a, 60, 0.2, "the agent's heartbeat with about 9 MB waiting")
    assert waiting["rate_bytes_per_s"] == 0.0 and waiting["eta_s"] is None
    web.call("POST", "/api/v1/agents/laptop/pause", json={"paused": False})
    moving = wait_until(lambda: (a := web.agent("laptop"))["rate_bytes_per_s"] > 0
                        and a["eta_s"] is not None and a, 60, 0.2,
                        "a rate and a time left while the agent uploads")
    assert isinstance(moving["eta_s"], float) and moving["eta_s"] > 0
    listed = {a["agent_id"]: a for a in web.call("GET", "/api/v1/agents")[1]["agents"]}
    assert "rate_bytes_per_s" in listed["laptop"] and "eta_s" in listed["laptop"]
