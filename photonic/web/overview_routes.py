"""The overview API: safety by shoot (GET /api/v1/shoots) and the topology (GET
/api/v1/topology). Handlers read the query, call the application layer (SafetyView,
Topology) and answer JSON; admin only, as all of /api/v1 (access.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from aiohttp import web

from photonic import errors
from photonic.server.safety import DEFAULT_LIMIT, MAX_LIMIT, SafetyView
from photonic.server.topology import Topology

SAFETY: web.AppKey[SafetyView] = web.AppKey("safety", SafetyView)
TOPOLOGY: web.AppKey[Topology] = web.AppKey("topology", Topology)


@dataclass(frozen=True)
class Overview:
    """What these routes call, as build_app receives it."""

    safety: SafetyView
    topology: Topology


def _limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_LIMIT
    try:
        return int(text)
    except ValueError:
        raise errors.InvalidInput(f"limit is a number from 1 to {MAX_LIMIT}") from None


async def shoots(request: web.Request) -> web.Response:
    found = await request.app[SAFETY].recent_shoots(request.query.get("agent", ""),
                                                     _limit(request.query.get("limit")))
    return web.json_response({"shoots": [dataclasses.asdict(s) for s in found]})


async def topology(request: web.Request) -> web.Response:
    return web.json_response(dataclasses.asdict(await request.app[TOPOLOGY].snapshot()))


def add_routes(app: web.Application, overview: Overview) -> None:
    app[SAFETY] = overview.safety
    app[TOPOLOGY] = overview.topology
    app.router.add_get("/api/v1/shoots", shoots)
    app.router.add_get("/api/v1/topology", topology)
