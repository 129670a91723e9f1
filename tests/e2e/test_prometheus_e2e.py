"""A real Prometheus (the Debian package's binary) scrapes a server and an agent during a sync
and its query API sees the photos each one counted, under the metric names the dashboard uses."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.daemons import (
    AgentHandle,
    ServerHandle,
    free_port,
    make_agent,
    start_server,
    wait_until,
)
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki

pytestmark = pytest.mark.e2e

PROMETHEUS = shutil.which("prometheus") or ""


@pytest.fixture
def prometheus_bin() -> str:
    if not PROMETHEUS:
        reason = ("prometheus is not installed: `PHOTONIC_TESTS=1 bash "
                  "scripts/install-system-deps.sh` (run by `make test-deps`) installs it")
        print(reason)
        pytest.skip(reason)
    return PROMETHEUS


def _prometheus(binary: str, root: Path, targets: dict[str, int]) -> tuple[Any, int]:
    """Starts Prometheus scraping each named 127.0.0.1 port every second."""
    root.mkdir(parents=True)
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": job, "scrape_interval": "1s",
                                  "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                                 for job, port in targets.items()]}
    (root / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = open(root / "prometheus.log", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [binary, f"--config.file={root / 'prometheus.yml'}",
         f"--storage.tsdb.path={root / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=log, start_new_session=True)
    log.close()
    return proc, port


def _query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            body: dict[str, Any] = json.loads(reply.read())
    except OSError:
        return []  # not listening yet
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.fixture
def scraped(tmp_path: Path, pki: TestPki, prometheus_bin: str
            ) -> Iterator[tuple[ServerHandle, AgentHandle, int]]:
    web_port, agent_port = free_port(), free_port()
    server = start_server(tmp_path / "server", pki, extra={"server": {"web_ui_port": web_port}})
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server,
                       extra={"agent": {"metrics_port": agent_port}})
    proc, port = _prometheus(prometheus_bin, tmp_path / "prometheus",
                             {"server": web_port, "agent": agent_port})
    try:
        yield server, agent, port
    finally:
        proc.terminate()
        proc.wait(20)
        agent.daemon.terminate(10)
        server.daemon.terminate(10)


def test_prometheus_sees_photos_processed_by_agent_on_both_daemons(
        scraped: tuple[ServerHandle, AgentHandle, int]) -> None:
    """While the agent syncs a few photos, Prometheus scrapes both daemons every second and
    `photonic_photos_processed_total{agent_id="laptop"}` comes back non-zero from the server's
    target and the agent's; the server's job gauges and build info are there too."""
    _server, agent, port = scraped
    for i in range(4):
        make_jpeg(agent.watches["photos"] / f"IMG_{i:04d}.jpg", seed=i)
    agent.start()

    def processed_by_job() -> dict[str, float]:
        rows = _query(port, 'sum by (job) (photonic_photos_processed_total{agent_id="laptop"})')
        found = {r["metric"]["job"]: float(r["value"][1]) for r in rows}
        return found if found.get("server", 0) >= 4 and found.get("agent", 0) >= 4 else {}

    found = wait_until(processed_by_job, 60, 0.5, "Prometheus to see the photos processed")
    assert found == {"server": 4.0, "agent": 4.0}
    assert _query(port, 'photonic_agent_bytes_pending{job="server",agent_id="laptop"}')
    builds = _query(port, "photonic_build_info")
    assert {r["metric"]["job"] for r in builds} == {"server", "agent"}
