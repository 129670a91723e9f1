"""Everything at once: the server's storage on a disk that fails and heals, the agent's
connection through a proxy that cuts, stalls and throttles, and SIGKILLs of both daemons, all
during one sync. At the end the disk is remounted (the page cache dropped) and every object the
server acknowledged is re-hashed: all of them must match their names, and every photo must be
in the library exactly once, byte-identical."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.diskfull import FailingDisk, failing_disk
from tests.chaos.proxy import ChaosProxy, FaultPlan
from tests.chaos.scenario import (
    commits_logged,
    final_verification,
    stop,
    wait_converged,
    write_photos,
)
from tests.chaos.tally import TALLY
from tests.support.daemons import Daemon, ServerHandle, make_agent, start_server, wait_until
from tests.support.pki import TestPki

pytestmark = [pytest.mark.chaos, pytest.mark.local_objects(
    "the objects are on a failing local disk; kills and cuts run on S3 in test_crashes and "
    "test_network")]

SEED = 20261206
PHOTOS = 90
THROTTLED = {"network": {"max_bandwidth": "4MB/s", "chunk_size": "64KiB",
                         "parallel_transfers": 2}}


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[FailingDisk]:
    """The server's storage folder is a failing disk (see tests/chaos/diskfull.py)."""
    with failing_disk(tmp_path / "server" / "storage") as failing:
        yield failing


def _disk_refusals(server: ServerHandle) -> int:
    """Times the server refused work because its disk failed: a sync stream ended, or a
    catalog commit (an agent's registration, a heartbeat) failed with an I/O error."""
    log = server.daemon.log()
    return log.count("event=sync_stream_refused") + log.count("disk I/O error")


def _after_progress(server: ServerHandle, rng: random.Random) -> None:
    before = commits_logged(server)
    wait_until(lambda: commits_logged(server) > before, 90, message="sync progress")
    time.sleep(rng.uniform(0.0, 0.4))


def test_kills_disconnects_and_a_failing_disk_together_lose_and_corrupt_nothing(
        tmp_path: Path, pki: TestPki, disk: FailingDisk, daemons: list[Daemon]) -> None:
    rng = random.Random(SEED)
    server = start_server(tmp_path / "server", pki)
    daemons.append(server.daemon)
    proxy = ChaosProxy(server.port, FaultPlan(budget=8), seed=SEED).start()
    try:
        agent = make_agent(tmp_path / "laptop", pki, "laptop", [proxy.endpoint],
                           extra=THROTTLED)
        daemons.append(agent.daemon)
        photos = agent.watches["photos"]
        write_photos(photos, range(0, 30))
        agent.start()

        _after_progress(server, rng)
        server.daemon.kill()
        TALLY.server_kills += 1
        write_photos(photos, range(30, 60))
        server.start()

        _after_progress(server, rng)
        refused_before = _disk_refusals(server)
        disk.break_writes()  # nothing is written back while broken: syncs fail
        TALLY.disk_faults += 1
        wait_until(lambda: _disk_refusals(server) > refused_before, 90,
                   message="the failing disk to refuse something")
        time.sleep(rng.uniform(0.0, 1.0))
        disk.heal()

        _after_progress(server, rng)
        agent.daemon.kill()
        TALLY.agent_kills += 1
        write_photos(photos, range(60, PHOTOS))
        agent.start()

        _after_progress(server, rng)
        server.daemon.kill()
        TALLY.server_kills += 1
        server.start()

        wait_converged(server, [agent], timeout_s=180)
        TALLY.network_faults += proxy.plan.total
    finally:
        proxy.stop()
    stop(agent.daemon, server.daemon)
    disk.remount()  # what is verified now is what reached the disk, not the page cache
    report = final_verification(server, [agent])
    assert report.photos_verified == PHOTOS
    assert report.objects_checked >= PHOTOS and report.objects_mismatched == 0
