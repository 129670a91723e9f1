"""`photonic status` and an `agent --once` with nothing to do are mostly interpreter start
and imports (issue 16: each within 0.2 s), so what they do not run they must not import.
Each command runs here as a real process (a real server over mutual TLS for the agent) with
an exit hook that lists sys.modules, so a later top-level import that brings one of these back
fails a test instead of slowing every start unnoticed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support.daemons import ServerHandle, make_agent
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]

NEVER_AT_START = (
    "rich", "cryptography", "PIL", "exifread", "watchdog", "prometheus_client", "aiohttp",
    "photonic.jobs_cli", "photonic.jobs_client", "photonic.jobs_model", "photonic.jobs_view",
    "photonic.sealing", "photonic.media.thumbnail", "photonic.agent.work",
    # Other commands' packages, their parsers included (photonic.cli.ALONE: these commands
    # build their own subparser only).
    "photonic.jobs_args", "photonic.server", "photonic.web", "photonic.lightroom",
    "photonic.service", "photonic.agent.executors",
)
"""Libraries and modules of other commands: the jobs CLI, the server (promotion, scrub,
restore), the dashboard, the Lightroom bridge, service units, the worker and its executors,
TLS checks and sealing (cryptography)."""

DAEMON_MODULES = frozenset({"photonic.service", "photonic.service.notify"})
"""What a daemon run (`agent`, also `--once`) loads of those: systemd readiness."""

NOT_FOR_ONCE = ("photonic.agent.watcher", "photonic.agent.watch_service",
                "photonic.agent.fsevents", "photonic.agent.metrics_service")
"""A daemon's parts that `--once` (which neither watches nor serves metrics) never starts."""

NOT_FOR_STATUS = ("asyncio", "grpc", "google.protobuf", "photonic.v1", "photonic.tls",
                  "photonic.agent.client", "photonic.agent.app")
"""Plain `status` reads the state database and the status file: no loop, no channel."""

_PROBE = """
import atexit, json, sys
out, argv = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["photonic", *argv]
from photonic.cli import run
run()
"""


def _modules_after(tmp_path: Path, *args: str) -> set[str]:
    """The modules loaded when `photonic ARGS` (a fresh interpreter) exits through
    photonic.cli.exit_now, whose atexit run this hook is part of."""
    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(out), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(out.read_text()))


def _loaded(modules: set[str], names: Sequence[str],
            allowed: frozenset[str] = frozenset()) -> list[str]:
    """The modules (or packages' modules) of names that were loaded, less those allowed."""
    return sorted(m for m in modules - allowed
                  for n in names if m == n or m.startswith(n + "."))


def test_an_idle_agent_once_and_status_load_only_what_they_run(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """After a first sync, `agent --once` (which connects, registers, rescans and finds
    nothing to do) loads grpc but none of the other commands' modules nor the watcher; then
    `status` loads no event loop, gRPC or TLS code either."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    for i in range(2):
        make_jpeg(agent.watches["photos"] / f"IMG_{i:04d}.jpg", seed=i)
    assert agent.once()["files_uploaded"] == 2
    config = str(agent.config_path)

    once = _modules_after(tmp_path, "agent", "--config", config, "--once")
    assert "grpc" in once and "photonic.agent.app" in once  # the probe saw a real run
    assert _loaded(once, NEVER_AT_START + NOT_FOR_ONCE, DAEMON_MODULES) == []

    status = _modules_after(tmp_path, "status", "--config", config)
    assert "photonic.agent.status_view" in status
    assert _loaded(status, NEVER_AT_START + NOT_FOR_ONCE + NOT_FOR_STATUS) == []
