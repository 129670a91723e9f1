"""A server's typed client of another server's PhotonicArchive: the objects that server holds
(a page at a time) and their bytes (decompressed within bounds). The scrub's repairs and
`photonic restore` read replicas through the ObjectSource seam this implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

import grpc

from photonic import wire
from photonic.config import SecurityConfig, ServerConfig
from photonic.dialing import wait_ready
from photonic.grpc_options import CHANNEL_OPTIONS
from photonic.media.chunks import received_bytes
from photonic.tls import channel_credentials
from photonic.v1 import archive_pb2, archive_pb2_grpc


@dataclass(frozen=True)
class ReplicaEntry:
    """An object another server holds; library paths relative to its library."""

    sha256: str
    size: int
    library_paths: tuple[str, ...]


class ObjectSource(Protocol):
    """A server holding copies of this one's objects."""

    @property
    def name(self) -> str: ...

    def fetch(self, sha256: str, offset: int) -> AsyncIterator[bytes]: ...

    async def list_objects(self, after_sha256: str, limit: int,
                           library_prefix: str) -> list[ReplicaEntry]: ...

    async def close(self) -> None: ...


ChannelDialer = Callable[[str], grpc.aio.Channel]
"""A channel to an endpoint with this server's own certificate (the replicator's dialing
when it is wired; own_certificate_channel otherwise)."""


def own_certificate_channel(security: SecurityConfig) -> ChannelDialer:
    """Dials with the server's certificate and key: the node it dials must give this
    certificate's common name the `replicate` scope."""
    credentials = channel_credentials(security.cert_path, security.key_path, security.ca_path)
    return lambda endpoint: grpc.aio.secure_channel(endpoint, credentials,
                                                    options=CHANNEL_OPTIONS)


class ArchiveClient:
    """One node's PhotonicArchive; errors arrive as photonic errors (Transient when it is
    unreachable, NotFound when it lacks an object)."""

    def __init__(self, name: str, endpoint: str, channel: grpc.aio.Channel) -> None:
        self._name = name
        self.endpoint = endpoint
        self._channel = channel
        self._stub = archive_pb2_grpc.PhotonicArchiveStub(channel)  # type: ignore[no-untyped-call]

    @property
    def name(self) -> str:
        return self._name

    async def ready(self, timeout_s: float) -> None:
        await wait_ready(self._channel, self.endpoint, timeout_s)

    async def fetch(self, sha256: str, offset: int) -> AsyncIterator[bytes]:
        """The object's raw bytes from offset on, in order; IntegrityError on a chunk out of
        place or one that does not inflate to its declared size."""
        expected = offset
        try:
            call = self._stub.FetchObject(archive_pb2.FetchObjectRequest(sha256=sha256,
                                                                         offset=offset))
            async for chunk in call:
                data = received_bytes(chunk, expected, self._name)
                expected += len(data)
                yield data
        except grpc.aio.AioRpcError as exc:
            raise wire.error_from_rpc(exc) from None

    async def list_objects(self, after_sha256: str, limit: int,
                           library_prefix: str) -> list[ReplicaEntry]:
        try:
            reply = await self._stub.ListObjects(archive_pb2.ListObjectsRequest(
                after_sha256=after_sha256, limit=limit, library_prefix=library_prefix))
        except grpc.aio.AioRpcError as exc:
            raise wire.error_from_rpc(exc) from None
        return [ReplicaEntry(e.sha256, e.size, tuple(e.library_paths)) for e in reply.entries]

    async def close(self) -> None:
        await self._channel.close()


def repair_sources(config: ServerConfig, dial: ChannelDialer | None = None
                   ) -> list[ObjectSource]:
    """The servers this one repairs from: its backup nodes (an encrypted one read through the
    archive key), then `storage.repair_from`."""
    from photonic.server.sealed_source import sealed_reader  # it reads through this module

    dial = dial or own_certificate_channel(config.security)
    sources: list[ObjectSource] = []
    for node in config.backup_nodes:
        client = ArchiveClient(node.name, node.endpoint, dial(node.endpoint))
        sources.append(sealed_reader(config, client) if node.encrypted else client)
    sources += [ArchiveClient(n.name, n.endpoint, dial(n.endpoint))
                for n in config.scrub.repair_from]
    return sources
