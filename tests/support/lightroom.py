"""A Lightroom worker for end-to-end tests: a server, and the Lightroom machine's agent
("desktop", scopes sync + work) serving the bridge on a free loopback port, with two photos
it synced; everything registered with the test's daemons list to be stopped at the end."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    catalog_rows,
    free_port,
    make_agent,
    start_server,
    wait_until,
)
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki


@dataclass(frozen=True)
class LightroomWorker:
    server: ServerHandle
    agent: AgentHandle
    port: int
    shas: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_lightroom_worker(root: Path, pki: TestPki, daemons: list[Daemon], *,
                           client_timeout: str, seed: int) -> LightroomWorker:
    server = start_server(root / "server", pki, extra={
        "agents": {"admin": {"scopes": ["admin"]}, "desktop": {"scopes": ["sync", "work"]}},
        "jobs": {"heartbeat": "500ms", "lease": "3s"}})
    daemons.append(server.daemon)
    port = free_port()
    agent = make_agent(root / "desktop", pki, "desktop", server, extra={
        "work": {"enabled": True, "executors": ["lightroom"],
                 "lightroom": {"port": port, "client_timeout": client_timeout}}})
    photos = [make_jpeg(agent.watches["photos"] / f"IMG_{i}.jpg", seed=seed + i)
              for i in range(2)]
    daemons.append(agent.daemon)
    agent.start()
    wait_until(lambda: len(catalog_rows(server, "SELECT 1 FROM versions")) == 2, 60,
               message="two photos synced")
    wait_until(lambda: (agent.buffer / "lightroom.secret").exists(), 30,
               message="the bridge's secret")
    shas = [hashlib.sha256(p.read_bytes()).hexdigest() for p in photos]
    return LightroomWorker(server, agent, port, shas)
