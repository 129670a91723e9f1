"""The configured server endpoints, each reachable through its own ServerClient with the
agent's one set of credentials: sync takes the first that answers (in configured order),
the work service holds a stream to every one of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grpc

from photonic.agent.client import ServerClient
from photonic.config import AgentConfig
from photonic.dialing import first_reachable
from photonic.tls import channel_credentials

ClientFactory = Callable[[str, grpc.ChannelCredentials, str], ServerClient]
"""Makes the client of one endpoint (endpoint, credentials, agent id); tests swap it."""

CONNECT_TIMEOUT_S = 5.0


class Endpoints:
    """One ServerClient per configured endpoint, on demand; callers close what they get."""

    def __init__(self, endpoints: Sequence[str], credentials: grpc.ChannelCredentials,
                 agent_id: str, *, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 factory: ClientFactory = ServerClient) -> None:
        self._endpoints = tuple(endpoints)
        self._credentials = credentials
        self._agent_id = agent_id
        self._connect_timeout_s = connect_timeout_s
        self._factory = factory

    @classmethod
    def from_config(cls, config: AgentConfig) -> Endpoints:
        sec = config.security
        return cls(config.server_endpoints,
                   channel_credentials(sec.cert_path, sec.key_path, sec.ca_path),
                   config.agent_id)

    @property
    def endpoints(self) -> tuple[str, ...]:
        return self._endpoints

    def client(self, endpoint: str) -> ServerClient:
        """A new, not yet connected client of endpoint (gRPC dials it lazily)."""
        return self._factory(endpoint, self._credentials, self._agent_id)

    def clients(self) -> list[ServerClient]:
        """A new client per endpoint, in configured order: for a service that talks to every
        server at once (the work service keeps one Work stream on each)."""
        return [self.client(e) for e in self._endpoints]

    async def connect_first(self) -> ServerClient:
        """The first endpoint that answers within the timeout, tried in configured order;
        Transient naming every endpoint's problem when none does."""
        return await first_reachable(self._endpoints, self.client, self._connect_timeout_s)
