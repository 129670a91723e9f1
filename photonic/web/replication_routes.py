"""GET /api/v1/replication: each backup node as the dashboard shows it (reachable or the last
error, how far behind, what is still to send, what it confirmed, and for an encrypted node
which key its copy depends on). The handler calls the replication service; admin only, as all
of /api/v1 (access.py)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiohttp import web

from photonic.server.replication.service import NodeStatus


class NodeStatuses(Protocol):
    """What the route reads: ReplicationService."""

    min_copies: int

    def nodes(self) -> list[NodeStatus]: ...


REPLICATION: web.AppKey[NodeStatuses] = web.AppKey("replication", NodeStatuses)


def node_json(n: NodeStatus) -> dict[str, object]:
    return {"name": n.name, "endpoint": n.endpoint, "encrypted": n.encrypted,
            "key_fingerprint": n.key_fingerprint, "key_warning": n.key_warning,
            "connected": n.connected, "last_error": n.last_error, "lag_s": round(n.lag_s, 3),
            "bytes_pending": n.bytes_pending, "versions_pending": n.versions_pending,
            "objects_confirmed": n.objects_confirmed}


async def replication(request: web.Request) -> web.Response:
    service = request.app[REPLICATION]
    nodes = await asyncio.to_thread(service.nodes)
    return web.json_response({"min_copies": service.min_copies,
                              "nodes": [node_json(n) for n in nodes]})


def add_routes(app: web.Application, service: NodeStatuses) -> None:
    app[REPLICATION] = service
    app.router.add_get("/api/v1/replication", replication)
