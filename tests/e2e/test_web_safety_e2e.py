"""Safety by shoot and the topology, against real daemons over real mutual TLS: a server with
its web API and one agent that also works jobs (facecrop, the real MediaPipe model). Photos the
agent holds while an admin has paused its syncing show as only on the agent; once resumed
and synced they are verified on the server; a completed face crop counts the photo as
processed; the topology shows this server, the agent connected and its Work stream."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from photonic.tls import certificate_info
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
from tests.support.models import astronaut_jpeg, fetched_models
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import library_hashes, library_sha

pytestmark = pytest.mark.e2e

SHOOT_START = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
MIN_MS = 60_000
START_MS = int(SHOOT_START.timestamp() * 1000)


class Api:
    def __init__(self, server: ServerHandle, token: str) -> None:
        self.base = f"http://127.0.0.1:{server.http_port}"
        self.token = token

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        assert status == 200, (path, status, body)
        return body


@pytest.fixture
def world(tmp_path: Path, pki: TestPki, daemons: list[Daemon]
          ) -> Iterator[tuple[ServerHandle, AgentHandle, Api]]:
    """A server (web API on loopback, laptop with the sync and work scopes) and the laptop
    agent, working facecrop jobs, started on an empty watch folder."""
    port = free_port()
    server = start_server(tmp_path / "server", pki, extra={
        "server": {"web_ui_port": port},
        "agents": {"admin": {"scopes": ["admin"]}, "laptop": {"scopes": ["sync", "work"]}}})
    server.http_port = port
    daemons.append(server.daemon)
    token = web_token(server)
    models = fetched_models(tmp_path / "models")
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server, extra={
        "work": {"enabled": True, "models_dir": str(models), "executors": ["facecrop"]}})
    daemons.append(agent.daemon)
    agent.start()
    yield server, agent, Api(server, token)


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str,
          agent: AgentHandle) -> None:
    """wait_until, with the agent's log in the failure."""
    try:
        wait_until(predicate, timeout_s, 0.2, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; agent log:\n{agent.daemon.log()[-3000:]}") from None


def _trip(api: Api) -> list[dict[str, Any]]:
    shoots: list[dict[str, Any]] = api.get("/api/v1/shoots?agent=laptop")["shoots"]
    return [s for s in shoots if s["folder"] == "photos/2024/trip"]


def _drop_photos(watch: Path, staging: Path) -> None:
    """Three photos of one shoot, ten minutes in all: two with EXIF capture times (Nikon),
    the astronaut without EXIF, dated by its mtime. Each appears in the watch folder whole
    (a rename), its mtime already set."""
    staging.mkdir()
    make_jpeg(staging / "DSC_1.jpg", seed=1, capture_time=SHOOT_START.replace(tzinfo=None))
    make_jpeg(staging / "DSC_2.jpg", seed=2,
              capture_time=SHOOT_START.replace(minute=5, tzinfo=None))
    astronaut_jpeg(staging / "astronaut.jpg")
    ten = START_MS / 1000 + 600
    os.utime(staging / "astronaut.jpg", (ten, ten))
    (watch / "2024" / "trip").mkdir(parents=True)
    for photo in sorted(staging.iterdir()):
        photo.rename(watch / "2024" / "trip" / photo.name)


def test_a_shoot_goes_from_the_agent_only_to_verified_and_processed(
        tmp_path: Path, world: tuple[ServerHandle, AgentHandle, Api]) -> None:
    """Paused by an admin, the agent queues a shoot of three photos it may not send: the
    shoot shows three photos on the agent only, none on the server. Resumed, it syncs them:
    three verified on the server, none only on the agent, one copy. A face crop of the
    astronaut, completed by the agent's worker, makes one of them processed."""
    server, agent, api = world
    wait_until(lambda: [a["agent_id"] for a in api.get("/api/v1/agents")["agents"]]
               == ["laptop"], 60, 0.1, "laptop registered")
    assert api.call("POST", "/api/v1/agents/laptop/pause", {"paused": True})[0] == 200
    _drop_photos(agent.watches["photos"], tmp_path / "staging")

    def queued_shoot() -> bool:
        return [(s["total"], s["on_agent_only"], s["on_server_verified"])
                for s in _trip(api)] == [(3, 3, 0)]

    _wait(queued_shoot, 60, "the queued shoot reported", agent)
    [shoot] = _trip(api)
    assert shoot == {"agent_id": "laptop", "folder": "photos/2024/trip",
                     "start_ms": START_MS, "end_ms": START_MS + 10 * MIN_MS,
                     "camera": "Nikon Z 6", "total": 3, "on_agent_only": 3,
                     "on_server_verified": 0, "copies": 1, "processed": 0}
    assert library_hashes(server, "laptop", "photos") == {}

    assert api.call("POST", "/api/v1/agents/laptop/pause", {"paused": False})[0] == 200

    def synced() -> bool:
        return [(s["total"], s["on_agent_only"], s["on_server_verified"])
                for s in _trip(api)] == [(3, 0, 3)]

    _wait(synced, 90, "the shoot synced", agent)
    assert library_sha(server, "laptop", "photos", "2024/trip/astronaut.jpg") is not None

    status, job = api.call("POST", "/api/v1/jobs", {
        "kind": "facecrop", "library_paths": ["laptop/photos/2024/trip/astronaut.jpg"]})
    assert status == 201, job

    def completed() -> bool:
        state = api.get(f"/api/v1/jobs/{job['jobId']}")["state"]
        assert state not in ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED"), state
        return bool(state == "JOB_STATE_COMPLETED")

    _wait(completed, 120, "the face crop completed", agent)
    [shoot] = _trip(api)
    assert (shoot["total"], shoot["on_server_verified"], shoot["processed"]) == (3, 3, 1)


def test_topology_shows_this_server_the_agent_and_its_worker(
        world: tuple[ServerHandle, AgentHandle, Api], pki: TestPki) -> None:
    """One server (its certificate's name, its gRPC address, its version), the laptop agent
    connected to it, and the laptop's Work stream with its capabilities and slots; a bad
    limit on /api/v1/shoots is a 400 and no credential a 401."""
    server, _agent, api = world
    name = certificate_info(pki.server_cert).subject_cn

    def worker_connected() -> bool:
        return [w["worker_id"] for w in api.get("/api/v1/topology")["workers"]] == ["laptop"]

    wait_until(worker_connected, 90, 0.2, "the laptop's Work stream is open")
    topology = api.get("/api/v1/topology")
    [this] = topology["servers"]
    assert this["name"] == name and this["grpc"] == server.endpoint and this["self"] is True
    assert this["version"]
    [agent] = topology["agents"]
    assert (agent["agent_id"], agent["server"], agent["connected"]) == ("laptop", name, True)
    assert agent["last_seen_ms"] > 0 and agent["state"]
    [worker] = topology["workers"]
    assert "facecrop" in worker["capabilities"] and worker["slots"] >= 1
    assert worker["running"] == []
    assert api.call("GET", "/api/v1/shoots?limit=0")[0] == 400
    assert api.call("GET", "/api/v1/shoots?limit=many")[0] == 400
    request = urllib.request.Request(api.base + "/api/v1/topology")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
