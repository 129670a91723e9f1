"""Dialing a backup node: the agent's ServerClient over mutual TLS with this server's own
certificate (issued with `photonic certs issue NAME --role server`, so it is a TLS client
too), its key and the CA; the node knows this server by the certificate's CN."""

from __future__ import annotations

from dataclasses import dataclass

from photonic import errors
from photonic._configreplication import BackupNodeConfig
from photonic.agent.client import ServerClient
from photonic.config import SecurityConfig
from photonic.tls import certificate_info, channel_credentials

CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class BackupNode:
    """A configured node and who this server is to it."""

    config: BackupNodeConfig
    identity: str
    """This server's certificate CN: the 'agent' id the node files our library under."""

    @property
    def name(self) -> str:
        return self.config.name


class NodeDialer:
    """Opens registered connections to backup nodes; the credentials are read once."""

    def __init__(self, security: SecurityConfig) -> None:
        self._security = security
        self.identity = certificate_info(security.cert_path).subject_cn

    def node(self, config: BackupNodeConfig) -> BackupNode:
        return BackupNode(config, self.identity)

    async def connect(self, node: BackupNode) -> ServerClient:
        """A connection that registered with the node (its SyncBatch needs that); Transient
        when unreachable, AuthError when the node does not give us the replicate scope."""
        sec = self._security
        credentials = channel_credentials(sec.cert_path, sec.key_path, sec.ca_path)
        client = ServerClient(node.config.endpoint, credentials, node.identity)
        try:
            await client.ready(CONNECT_TIMEOUT_S)
            registration = await client.register(())
        except BaseException:
            await client.close()
            raise
        if registration.paused:
            await client.close()
            raise errors.Transient(f"backup node {node.name} paused replication from "
                                   f"{node.identity}")
        return client

