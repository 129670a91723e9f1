"""The JSON API under /api/v1/: each handler reads the request, calls the application layer
(AgentsService, JobsService, LibraryBrowser) as the caller `web:<token name>`, and answers
JSON. No SQL and no server paths here."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp import web
from google.protobuf import json_format

from photonic import errors
from photonic.jobs_client import job_to_dict
from photonic.jobs_model import JobFilter, JobState
from photonic.jobs_wire import request_from_wire
from photonic.server.agents_service import AgentsService, Keep
from photonic.server.jobs.service import JobsService
from photonic.server.library_browse import LibraryBrowser
from photonic.v1 import jobs_pb2
from photonic.web.access import caller_of

AGENTS: web.AppKey[AgentsService] = web.AppKey("agents", AgentsService)
JOBS: web.AppKey[JobsService] = web.AppKey("jobs", JobsService)
LIBRARY: web.AppKey[LibraryBrowser] = web.AppKey("library", LibraryBrowser)
MAX_LIST = 1000


def as_json(value: object) -> Any:
    """A domain dataclass (or a list of them) as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    return value


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise errors.InvalidInput("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise errors.InvalidInput("the body must be a JSON object")
    return body


async def list_agents(request: web.Request) -> web.Response:
    agents, caller = request.app[AGENTS], caller_of(request)
    ids = await request.app[LIBRARY].agent_ids()
    return web.json_response({"agents": [as_json(await agents.status(caller, a)) for a in ids]})


async def get_agent(request: web.Request) -> web.Response:
    status = await request.app[AGENTS].status(caller_of(request), request.match_info["agent"])
    return web.json_response(as_json(status))


async def pause_agent(request: web.Request) -> web.Response:
    body = await _body(request)
    if not isinstance(body.get("paused"), bool):
        raise errors.InvalidInput('send {"paused": true} or {"paused": false}')
    now = await request.app[AGENTS].pause(caller_of(request), request.match_info["agent"],
                                          body["paused"])
    return web.json_response({"agent_id": request.match_info["agent"], "paused": now})


async def list_conflicts(request: web.Request) -> web.Response:
    rows = await request.app[LIBRARY].conflicts(request.query.get("agent", ""))
    return web.json_response({"conflicts": as_json(rows)})


async def resolve_conflicts(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        keep = Keep(str(body.get("keep", "")))
    except ValueError:
        raise errors.InvalidInput('"keep" must be "incoming" or "server"') from None
    ids = body.get("ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise errors.InvalidInput('"ids" must be a list of conflict ids')
    resolved = await request.app[AGENTS].resolve_conflicts(
        caller_of(request), keep, ids, all_open=body.get("all") is True)
    return web.json_response({"resolved": resolved})


def _job_filter(query: Any) -> JobFilter:
    try:
        state = JobState(query["state"].upper()) if query.get("state") else None
        limit = int(query.get("limit", "100"))
    except ValueError:
        raise errors.InvalidInput(
            f"state is one of {', '.join(JobState)}; limit is a number") from None
    return JobFilter(state, query.get("kind", ""), query.get("parent_id", ""),
                     query.get("top_level", "") in ("1", "true"), max(1, min(limit, MAX_LIST)))


async def list_jobs(request: web.Request) -> web.Response:
    jobs = await request.app[JOBS].find(_job_filter(request.query))
    return web.json_response({"jobs": [job_to_dict(j) for j in jobs]})


async def get_job(request: web.Request) -> web.Response:
    return web.json_response(job_to_dict(await request.app[JOBS].get(request.match_info["job"])))


async def submit_job(request: web.Request) -> web.Response:
    """The body is SubmitJobRequest's JSON mapping (snake_case or camelCase names), parsed by
    the same rules as the gRPC call."""
    body = await _body(request)
    try:
        message = json_format.ParseDict(body, jobs_pb2.SubmitJobRequest())
    except json_format.ParseError as exc:
        raise errors.InvalidInput(f"not a SubmitJobRequest: {exc}") from None
    job = await request.app[JOBS].submit(str(caller_of(request).agent_id),
                                         request_from_wire(message))
    return web.json_response(job_to_dict(job), status=201)


async def cancel_job(request: web.Request) -> web.Response:
    job = await request.app[JOBS].cancel(str(caller_of(request).agent_id),
                                         request.match_info["job"])
    return web.json_response(job_to_dict(job))


async def library(request: web.Request) -> web.Response:
    level = await request.app[LIBRARY].level(request.query.get("folder", ""))
    return web.json_response(as_json(level))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/agents", list_agents)
    r.add_get("/api/v1/agents/{agent}", get_agent)
    r.add_post("/api/v1/agents/{agent}/pause", pause_agent)
    r.add_get("/api/v1/conflicts", list_conflicts)
    r.add_post("/api/v1/conflicts/resolve", resolve_conflicts)
    r.add_get("/api/v1/jobs", list_jobs)
    r.add_post("/api/v1/jobs", submit_job)
    r.add_get("/api/v1/jobs/{job}", get_job)
    r.add_post("/api/v1/jobs/{job}/cancel", cancel_job)
    r.add_get("/api/v1/library", library)
