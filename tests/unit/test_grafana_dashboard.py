"""The Grafana dashboard in docs/grafana uses only metric names the daemons export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from photonic.agent.metrics import AgentMetrics
from photonic.server.metrics import ServerMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "photonic.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
            "gauge": ("",), "info": ("_info",), "summary": ("_sum", "_count")}


def registries() -> list[CollectorRegistry]:
    server, agent = CollectorRegistry(), CollectorRegistry()
    ServerMetrics(server)
    AgentMetrics(agent, "laptop")
    return [server, agent]


def exported_names() -> set[str]:
    """Every sample name a scrape of either daemon can show (labelled metrics included
    before any label is set)."""
    return {family.name + suffix for registry in registries()
            for family in registry.collect() for suffix in SUFFIXES[family.type]}


def dashboard_names() -> set[str]:
    data = json.loads(DASHBOARD.read_text("utf-8"))
    exprs = [t["expr"] for p in data["panels"] for t in p["targets"]]
    return {n for e in exprs for n in re.findall(r"\bphotonic_[a-z0-9_]+", e)}


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    """Each photonic_* name in a panel query is a sample of ServerMetrics or AgentMetrics, so a
    renamed metric fails here instead of leaving an empty panel."""
    used = dashboard_names()
    assert len(used) >= 14
    assert used - exported_names() == set()


def test_dashboard_is_grafana_json_with_a_prometheus_datasource_variable() -> None:
    """schemaVersion is current, the datasource is a variable, every panel has a query."""
    data = json.loads(DASHBOARD.read_text("utf-8"))
    assert data["schemaVersion"] >= 39
    assert {"name": "datasource", "type": "datasource", "query": "prometheus"}.items() \
        <= data["templating"]["list"][0].items()
    assert all(p["targets"] for p in data["panels"])
    assert len({p["id"] for p in data["panels"]}) == len(data["panels"])


BOUNDED_LABELS = {"agent_id", "kind", "state", "operation", "reason", "from_state", "to_state",
                  "version", "python", "transport"}


def test_labels_are_bounded_sets_never_paths_or_hashes() -> None:
    """Every label of both daemons' metrics is one of a few bounded sets (agents, job kinds,
    states, operations, reasons, the build): no path, hash or photo id becomes a series."""
    labels: set[str] = set()
    for registry in registries():
        for family in registry.collect():
            labels.update(*(s.labels for s in family.samples))
    # a labelled family shows no sample before its first labels(): read its declaration
    for registry in registries():
        for collector in list(registry._collector_to_names):
            labels.update(getattr(collector, "_labelnames", ()))
    labels.discard("le")
    assert labels <= BOUNDED_LABELS, labels - BOUNDED_LABELS
