"""Network faults: a proxy between agent and server cuts, stalls and throttles connections at
seeded random points; the agent must recover with backoff, on its own, and finish the sync."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.proxy import ChaosProxy, Fault, FaultPlan
from tests.chaos.scenario import final_verification, wait_converged, write_photos
from tests.chaos.tally import TALLY
from tests.support.daemons import Daemon, ServerHandle, make_agent
from tests.support.pki import TestPki

pytestmark = pytest.mark.chaos

SEED = 7


@pytest.fixture
def proxy(server: ServerHandle) -> Iterator[ChaosProxy]:
    chaos = ChaosProxy(server.port, FaultPlan(budget=14), seed=SEED).start()
    yield chaos
    chaos.stop()


def test_agent_recovers_from_cut_stalled_and_throttled_connections(
        tmp_path: Path, pki: TestPki, server: ServerHandle, proxy: ChaosProxy,
        daemons: list[Daemon]) -> None:
    """Fourteen seeded faults (connection resets, stalls, throttling) during a 120-photo sync:
    the agent reconnects by itself with backoff and the library ends complete and exact."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", [proxy.endpoint],
                       extra={"network": {"chunk_size": "64KiB", "parallel_transfers": 2}})
    daemons.append(agent.daemon)
    write_photos(agent.watches["photos"], range(120))
    agent.start()
    wait_converged(server, [agent], timeout_s=150)
    final_verification(server, [agent])
    TALLY.network_faults += proxy.plan.total
    assert proxy.plan.total == proxy.plan.budget, proxy.plan.injected
    assert proxy.plan.injected.get(Fault.CUT, 0) > 0
    assert agent.daemon.log().count("event=connected") > 1, "the agent reconnected by itself"
