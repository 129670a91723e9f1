"""Without a metrics port nobody can read the agent's metrics: none are kept, none imported."""

from __future__ import annotations

import subprocess
import sys

from prometheus_client import CollectorRegistry

from photonic.agent.metrics import AgentMetrics

_EXERCISE = """
m.bytes_sent.inc(5); m.raw_bytes_sent.inc(5); m.files_hashed.inc(); m.reconnects.inc()
m.queue_files.set(3); m.queue_bytes.set(4)
m.files.labels("laptop", "uploaded").inc()
m.state.labels("monitoring").set(1)
m.state_transitions.labels("offline", "connecting").inc()
m.sync_duration.labels("laptop").observe(0.5)
"""


def test_an_agent_without_metrics_port_never_imports_prometheus_client() -> None:
    code = ("import sys\nimport photonic.cli, photonic.agent.app\n"
            "from photonic.agent.metrics import AgentMetrics\n"
            "m = AgentMetrics(None, 'laptop')\n" + _EXERCISE +
            "print('prometheus_client' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_with_a_registry_every_update_is_recorded() -> None:
    registry = CollectorRegistry()
    m = AgentMetrics(registry, "laptop")
    exec(_EXERCISE, {"m": m})
    value = registry.get_sample_value
    assert value("photonic_agent_bytes_sent_total") == 5
    assert value("photonic_agent_queue_files") == 3
    assert value("photonic_photos_processed_total",
                 {"agent_id": "laptop", "operation": "uploaded"}) == 1
    assert value("photonic_agent_state", {"state": "monitoring"}) == 1
    assert value("photonic_agent_state", {"state": "offline"}) == 0
    assert value("photonic_sync_duration_seconds_count", {"agent_id": "laptop"}) == 1
