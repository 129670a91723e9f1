"""Crashes during jobs: SIGKILL the server and the worker agents at seeded random moments of a
bgremove batch worked by two real worker agents. At the end every child is COMPLETED exactly
once, each with one output that is in the library and hashes to its name, and no object or
library entry was left half-written."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.tally import TALLY
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    make_agent,
    start_server,
    wait_until,
)
from tests.support.jobs import Admin
from tests.support.models import astronaut_jpeg, fetched_models
from tests.support.pki import TestPki
from tests.support.stored import job_rows, object_bytes, output_files

pytestmark = pytest.mark.chaos

PHOTOS = 40
SERVER_KILLS = 4
WORKER_KILLS = 4
SEED = 20261206
KILL_JITTER_S = 0.4
JOBS = {"heartbeat": "300ms", "lease": "2s", "max_attempts": 20}
"""Short leases so a killed worker's job moves on quickly; attempts enough for every kill."""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fetched_models(tmp_path_factory.mktemp("models"))


def _worker(root: Path, pki: TestPki, agent_id: str, server: ServerHandle,
            models: Path) -> AgentHandle:
    return make_agent(root / agent_id, pki, agent_id, server, {"shoot": root / agent_id / "s"},
                      extra={"work": {"enabled": True, "models_dir": str(models),
                                      "executors": ["bgremove"]}})


def _completed(server: ServerHandle, parent: str) -> int:
    rows = job_rows(server, "SELECT COUNT(*) FROM jobs WHERE "
                    "parent_id = ? AND state = 'COMPLETED'", (parent,))
    return int(rows[0][0])


def _kill_after_progress(victim: Daemon, server: ServerHandle, parent: str,
                         rng: random.Random) -> None:
    before = _completed(server, parent)
    wait_until(lambda: _completed(server, parent) > before or not victim.running, 90,
               message="job progress")
    time.sleep(rng.uniform(0.0, KILL_JITTER_S))
    victim.kill()


@pytest.fixture
def workers(tmp_path: Path, pki: TestPki, models: Path, daemons: list[Daemon]
            ) -> Iterator[tuple[ServerHandle, list[AgentHandle], Path]]:
    agents: dict[str, Any] = {"admin": {"scopes": ["admin"]},
                              "worker": {"scopes": ["sync", "work"]},
                              "desktop": {"scopes": ["sync", "work"]}}
    server = start_server(tmp_path / "server", pki, extra={"jobs": JOBS, "agents": agents})
    daemons.append(server.daemon)
    pool = [_worker(tmp_path, pki, a, server, models) for a in ("worker", "desktop")]
    photo = astronaut_jpeg(tmp_path / "astronaut.jpg")
    from PIL import Image

    with Image.open(photo) as image:
        for i in range(PHOTOS):  # distinct contents: each cut-out of a slightly other size
            image.resize((300 + 4 * i, 300 + 4 * i)).save(
                pool[0].watches["shoot"] / f"IMG_{i:04d}.jpg", "JPEG", quality=90)
    pool[0].once()
    yield server, pool, tmp_path


def test_server_and_workers_killed_during_a_batch_lose_and_duplicate_nothing(
        workers: tuple[ServerHandle, list[AgentHandle], Path], daemons: list[Daemon]) -> None:
    """Four SIGKILLs of the server and four of a worker agent, each at a seeded random moment
    after the batch made progress, restarted at once: every child ends COMPLETED once, with
    its output durable and intact in the library, whatever attempt produced it."""
    server, pool, _root = workers
    rng = random.Random(SEED)
    for agent in pool:
        daemons.append(agent.daemon)
        agent.start()
    admin = Admin(server)
    parent = admin.submit("bgremove", (), library_folder="worker/shoot").job_id
    admin.close()
    victims = ["server"] * SERVER_KILLS + ["worker"] * WORKER_KILLS
    rng.shuffle(victims)
    for who in victims:
        if _completed(server, parent) >= PHOTOS:
            break
        if who == "server":
            _kill_after_progress(server.daemon, server, parent, rng)
            TALLY.server_kills += 1
            server.start()
        else:
            agent = rng.choice(pool)
            _kill_after_progress(agent.daemon, server, parent, rng)
            TALLY.worker_kills += 1
            agent.start()
    wait_until(lambda: _completed(server, parent) == PHOTOS, 180,
               message=f"all {PHOTOS} children COMPLETED")
    _verify_outputs(server, parent)


def _verify_outputs(server: ServerHandle, parent: str) -> None:
    """Each child: COMPLETED, exactly one output row, its object and its library file
    present and hashing to its name; nothing left in partial/ but parked uploads."""
    children = job_rows(server, "SELECT job_id, state FROM jobs WHERE parent_id = ?", (parent,))
    assert len(children) == PHOTOS and {s for _j, s in children} == {"COMPLETED"}
    shown = output_files(server, "_derived")
    for job_id, _state in children:
        outputs = job_rows(server, "SELECT sha256, library_path FROM "
                           "job_outputs WHERE job_id = ?", (job_id,))
        TALLY.jobs_verified += 1
        if len(outputs) != 1:
            TALLY.job_results_duplicated += len(outputs) > 1
            TALLY.job_results_lost += not outputs
            continue
        sha, library_path = outputs[0]
        data = object_bytes(server, sha)
        TALLY.objects_rehashed += 1
        if data is None or hashlib.sha256(data).hexdigest() != sha \
                or shown.get(library_path) != sha:
            TALLY.job_results_lost += 1
    assert TALLY.job_results_lost == 0 and TALLY.job_results_duplicated == 0
    assert len(shown) == PHOTOS  # one cut-out per photo: no second version from a retry
