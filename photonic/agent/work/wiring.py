"""Builds the WorkService from the agent's config and state, so the composition root adds it
in one line. The executor pool is imported here, late: an agent that takes no jobs never
loads it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from photonic._configjobs import LIGHTROOM_PORT
from photonic.agent.statedb import AgentStateDB
from photonic.agent.work.jobs_channel import JobsChannel
from photonic.agent.work.metrics import WorkerMetrics
from photonic.agent.work.routing import ManagedBridge, RoutingPool
from photonic.agent.work.service import WorkService
from photonic.config import AgentConfig
from photonic.tls import channel_credentials

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


def build_work_service(config: AgentConfig, db: AgentStateDB,
                       registry: CollectorRegistry | None) -> WorkService:
    """A WorkService on every configured endpoint, over the agent's certificate; local
    copies are the synced files beneath the configured watch folders."""
    from photonic.agent.executors.pool import ExecutorPool
    from photonic.agent.executors.registry import KINDS

    work, sec = config.work, config.security
    # The pool runs the executors it knows; others (lightroom) are served elsewhere.
    kinds = None if work.executors is None else [k for k in work.executors if k in KINDS]
    children = ExecutorPool(work.models_dir, kinds, work.options,
                            memory_limit_bytes=work.memory_limit_bytes)
    pool = RoutingPool(children, _bridge(config))
    credentials = channel_credentials(sec.cert_path, sec.key_path, sec.ca_path)
    roots: dict[str, Path] = {w.name: w.path for w in config.watches}
    return WorkService(
        agent_id=config.agent_id,
        rpcs=[JobsChannel(endpoint, credentials) for endpoint in config.server_endpoints],
        pool=pool, local_copies=lambda sha: db.local_copy_of(sha, roots), config=work,
        buffer_path=config.buffer_path, metrics=WorkerMetrics(registry))


def _bridge(config: AgentConfig) -> ManagedBridge | None:
    """The Lightroom bridge, when this worker serves Lightroom: a `work.lightroom` section,
    or `lightroom` among `work.executors`. It listens on 127.0.0.1 only."""
    work = config.work
    if "lightroom" not in work.options and "lightroom" not in (work.executors or ()):
        return None
    from photonic.lightroom.bridge import LightroomBridge
    from photonic.lightroom.secret import load_or_make_secret

    options = work.options.get("lightroom", {})
    port = options.get("port", LIGHTROOM_PORT)
    timeout_s = options.get("client_timeout_s", 300.0)
    assert isinstance(port, int) and isinstance(timeout_s, float | int)
    return LightroomBridge(load_or_make_secret(config.buffer_path), port=port,
                           client_timeout_s=float(timeout_s),
                           jobs_dir=config.buffer_path / "work" / "lightroom")
