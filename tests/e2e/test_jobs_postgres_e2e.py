"""Jobs on the shared PostgreSQL queue (issue 20), with real daemons over real mutual TLS and
a real throwaway PostgreSQL 15: a server whose jobs.queue_url is postgresql:// runs a face
crop to completion on a real worker agent, and two servers sharing one queue, one worker
each, complete ten jobs submitted on either of them with no job run twice."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from photonic.server.pg_db import connect
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    free_port,
    make_agent,
    metric_total,
    start_server,
    wait_until,
)
from tests.support.jobs import Admin
from tests.support.models import astronaut_jpeg, fetched_models
from tests.support.pki import TestPki
from tests.support.stored import library_sha, output_files

pytestmark = pytest.mark.e2e

JOB_S = 120.0
JOBS = 10
_STARTED = re.compile(r"event=job_started\b.*?\bjob=([0-9a-f]+)")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fetched_models(tmp_path_factory.mktemp("models"))


def _server(root: Path, pki: TestPki, queue_url: str, daemons: list[Daemon]) -> ServerHandle:
    """A server on the shared queue; short leases; laptop and desktop may sync and work."""
    http_port = free_port()
    handle = start_server(root, pki, extra={
        "server": {"web_ui_port": http_port},
        "jobs": {"queue_url": queue_url, "heartbeat": "1s", "lease": "3s"},
        "agents": {"admin": {"scopes": ["admin"]},
                   **{a: {"scopes": ["sync", "work"]} for a in ("laptop", "desktop")}}})
    handle.http_port = http_port
    daemons.append(handle.daemon)
    return handle


def _worker(root: Path, pki: TestPki, agent_id: str, server: ServerHandle, models: Path,
            daemons: list[Daemon]) -> AgentHandle:
    """A facecrop worker that syncs the astronaut to its server (so the input is there)."""
    agent = make_agent(root / agent_id, pki, agent_id, server, {"p": root / agent_id / "p"},
                       extra={"work": {"enabled": True, "models_dir": str(models),
                                       "executors": ["facecrop"]}})
    astronaut_jpeg(agent.watches["p"] / "astronaut.jpg")
    daemons.append(agent.daemon)
    return agent.start()


def _ready(server: ServerHandle, agent: AgentHandle) -> str:
    """Until the agent's astronaut is in the server's library and its Work stream is open;
    returns the photo's SHA-256."""
    found: str = wait_until(
        lambda: metric_total(server, "photonic_jobs_workers_connected") == 1
        and library_sha(server, agent.agent_id, "p", "astronaut.jpg"), 90, 0.1,
        f"{agent.agent_id} synced and working; log:\n{agent.daemon.log()[-2000:]}")
    return found


def _pg_rows(url: str, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with connect(url) as conn:
        return list(conn.execute(query.encode(), args).fetchall())


def test_a_server_on_the_postgresql_queue_runs_a_face_crop_on_a_real_worker(
        tmp_path: Path, pki: TestPki, pg_url: str, models: Path,
        daemons: list[Daemon]) -> None:
    """jobs.queue_url: postgresql://...: the job is a row in PostgreSQL (no jobs.db is made),
    the worker gets it pushed, and it ends COMPLETED with its crop in the server's library."""
    server = _server(tmp_path / "server", pki, pg_url, daemons)
    worker = _worker(tmp_path, pki, "laptop", server, models, daemons)
    sha = _ready(server, worker)
    admin = Admin(server)
    try:
        job = admin.submit("facecrop", [sha])
        done = admin.wait_state(job.job_id, "COMPLETED", "FAILED", timeout_s=JOB_S)
    finally:
        admin.close()
    assert (done.state.value, done.worker_id, done.attempts) == ("COMPLETED", "laptop", 1), \
        done.error
    [output] = done.outputs
    shown = output_files(server, "_derived")
    assert shown == {output.library_path: output.sha256}
    assert _pg_rows(pg_url, "SELECT state, attempts FROM jobs WHERE job_id = %s",
                    (job.job_id,)) == [("COMPLETED", 1)]
    assert not (server.storage / "jobs.db").exists()


def test_two_servers_sharing_the_queue_complete_ten_jobs_and_run_none_twice(
        tmp_path: Path, pki: TestPki, pg_url: str, models: Path,
        daemons: list[Daemon]) -> None:
    """Servers A and B share one PostgreSQL queue, each with its own worker. Ten face crops
    are submitted on A: all complete, each on its first try, each started exactly once
    across both workers (counted in their logs), and both workers ran some: B's dispatcher
    hears of A's jobs only through NOTIFY (nothing on B changes), so its idle worker
    getting work is the cross-server push. Read back through B."""
    a = _server(tmp_path / "a", pki, pg_url, daemons)
    b = _server(tmp_path / "b", pki, pg_url, daemons)
    laptop = _worker(tmp_path, pki, "laptop", a, models, daemons)
    desktop = _worker(tmp_path, pki, "desktop", b, models, daemons)
    sha = _ready(a, laptop)
    assert _ready(b, desktop) == sha
    admins = [Admin(a), Admin(b)]
    try:
        ids = [admins[0].submit("facecrop", [sha]).job_id for _ in range(JOBS)]
        done = [admins[1].wait_state(job_id, "COMPLETED", "FAILED", timeout_s=JOB_S)
                for job_id in ids]
    finally:
        for admin in admins:
            admin.close()
    # A lease handed back unrun (the worker's slot not yet free: a bounce between the two
    # dispatchers) takes an attempt number but is no try; the logs below prove one start.
    assert [(j.state.value, j.tries) for j in done] == [("COMPLETED", 1)] * JOBS, \
        [(j.error, j.attempts, j.handbacks) for j in done]
    started = [m.group(1) for w in (laptop, desktop) for line in w.daemon.log().splitlines()
               if (m := _STARTED.search(line))]
    assert sorted(started) == sorted(ids)
    by_worker = {w: sum(j.worker_id == w for j in done) for w in ("laptop", "desktop")}
    assert sum(by_worker.values()) == JOBS and min(by_worker.values()) >= 1, by_worker
    assert _pg_rows(pg_url, "SELECT COUNT(*) FROM job_durations") == [(JOBS,)]
