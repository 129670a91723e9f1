"""The PhotonicArchive servicer: thin. It admits callers holding the `replicate` scope (another
server: a primary asking its archive, an archive asking its primary) or `admin`, and calls
ArchiveReader; errors travel as status codes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from photonic import errors
from photonic.models import Scope
from photonic.server.archive_service import ArchiveReader
from photonic.server.auth import Authorizer
from photonic.server.rpc_errors import answer, refuse
from photonic.v1 import archive_pb2, archive_pb2_grpc

_SCOPES = (Scope.REPLICATE, Scope.ADMIN)


class ArchiveRpc(archive_pb2_grpc.PhotonicArchiveServicer):
    def __init__(self, auth: Authorizer, reader: ArchiveReader) -> None:
        self._auth = auth
        self._reader = reader

    async def FetchObject(self, request: archive_pb2.FetchObjectRequest,
                          context: grpc.aio.ServicerContext
                          ) -> AsyncIterator[archive_pb2.ObjectChunk]:
        await self._auth.require_any(context, _SCOPES, "FetchObject")
        try:
            async for c in self._reader.fetch(request.sha256, request.offset):
                yield archive_pb2.ObjectChunk(offset=c.offset, data=c.data, lz4=c.lz4,
                                              raw_size=c.raw_size, total_size=c.total_size)
        except errors.PhotonicError as exc:
            await refuse(context, exc)

    async def ListObjects(self, request: archive_pb2.ListObjectsRequest,
                          context: grpc.aio.ServicerContext) -> archive_pb2.ListObjectsResponse:
        await self._auth.require_any(context, _SCOPES, "ListObjects")

        async def page() -> archive_pb2.ListObjectsResponse:
            held = await self._reader.list_objects(request.after_sha256, request.limit,
                                                   request.library_prefix)
            return archive_pb2.ListObjectsResponse(entries=[
                archive_pb2.ObjectEntry(sha256=o.sha256, size=o.size,
                                        library_paths=list(o.library_paths)) for o in held])

        return await answer(context, page)
