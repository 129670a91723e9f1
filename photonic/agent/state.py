"""The agent's connection state machine; every transition is logged and exported as a metric."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from photonic.agent.metrics import AgentMetrics
from photonic.logfmt import event
from photonic.models import AgentState

log = logging.getLogger("photonic.agent.state")

# OFFLINE -> CONNECTING -> SYNCING <-> MONITORING, plus CONFLICT (needs a person) and ERROR.
ALLOWED: dict[AgentState, frozenset[AgentState]] = {
    AgentState.OFFLINE: frozenset({AgentState.CONNECTING, AgentState.ERROR}),
    AgentState.CONNECTING: frozenset({AgentState.SYNCING, AgentState.MONITORING,
                                      AgentState.OFFLINE, AgentState.ERROR,
                                      AgentState.CONFLICT}),
    AgentState.SYNCING: frozenset({AgentState.MONITORING, AgentState.OFFLINE,
                                   AgentState.CONFLICT, AgentState.ERROR}),
    AgentState.MONITORING: frozenset({AgentState.SYNCING, AgentState.OFFLINE,
                                      AgentState.CONFLICT, AgentState.ERROR}),
    AgentState.CONFLICT: frozenset({AgentState.SYNCING, AgentState.MONITORING,
                                    AgentState.OFFLINE, AgentState.ERROR}),
    AgentState.ERROR: frozenset({AgentState.OFFLINE, AgentState.CONNECTING}),
}


class IllegalTransition(Exception):
    pass


class AgentStateMachine:
    def __init__(self, agent_id: str, metrics: AgentMetrics,
                 on_change: Callable[[AgentState, str], None] | None = None) -> None:
        self._agent_id = agent_id
        self._metrics = metrics
        self._on_change = on_change
        self.state = AgentState.OFFLINE
        self.since = time.time()
        self.reason = "starting"
        metrics.state.labels(self.state.value).set(1)

    def to(self, new: AgentState, reason: str = "") -> None:
        if new is self.state:
            return
        if new not in ALLOWED[self.state]:
            raise IllegalTransition(f"{self.state} -> {new}")
        old, self.state, self.since, self.reason = self.state, new, time.time(), reason
        self._metrics.state.labels(old.value).set(0)
        self._metrics.state.labels(new.value).set(1)
        self._metrics.state_transitions.labels(old.value, new.value).inc()
        event(log, "agent_state", agent=self._agent_id, from_state=old.value,
              to_state=new.value, reason=reason)
        if self._on_change is not None:
            self._on_change(new, reason)
