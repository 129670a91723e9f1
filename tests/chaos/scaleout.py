"""Scaffolding for the scale-out chaos scenarios: several real servers on one PostgreSQL
database (catalog, job queue, shared claims and events) and one bucket of moto's S3 server,
and the end-of-scenario verification of that installation, read where it lives (the shared
catalog and the bucket, not a server's disk), counted into the chaos tally."""

from __future__ import annotations

import contextlib
import hashlib
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.chaos.scenario import record
from tests.chaos.verify import Verification
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    acknowledged_files,
    catalog_rows,
    free_port,
    queued_count,
    start_server,
    tree_hashes,
    web_get,
    write_server_config,
)
from tests.support.environ import environment
from tests.support.pki import TestPki
from tests.support.s3 import S3Endpoint

PREFIX = "studio/"


@contextlib.contextmanager
def fault_armed(point: str, after: int = 1) -> Iterator[None]:
    """A daemon started inside this block inherits the fault point (faults.py); the tests'
    own environment is as before afterwards, so a restart of that daemon is unarmed."""
    with environment({"PHOTONIC_FAULT_POINT": point, "PHOTONIC_FAULT_AFTER": str(after)}):
        yield


@dataclass
class ScaleOut:
    """One shared catalog database and one bucket; servers made here all use both."""

    pg_url: str
    s3: S3Endpoint
    bucket: str
    pki: TestPki
    daemons: list[Daemon]

    def config(self, http_port: int, agents: Mapping[str, Sequence[str]],
               jobs: Mapping[str, str] | None = None) -> dict[str, Any]:
        return {
            "server": {"web_ui_port": http_port},
            "catalog": {"url": self.pg_url},
            "storage": {"objects": f"s3://{self.bucket}/{PREFIX}",
                        "s3": {"endpoint_url": self.s3.url, "region": "us-east-1"}},
            "agents": {"admin": {"scopes": ["admin"]},
                       **{a: {"scopes": list(s)} for a, s in agents.items()}},
            "jobs": dict(jobs or {}),
        }

    def server(self, root: Path, agents: Mapping[str, Sequence[str]], *,
               jobs: Mapping[str, str] | None = None) -> ServerHandle:
        """A running server of the installation (stopped at the end of the test)."""
        http_port = free_port()
        handle = start_server(root, self.pki, extra=self.config(http_port, agents, jobs))
        handle.http_port = http_port
        self.daemons.append(handle.daemon)
        return handle

    def server_not_started(self, root: Path, agents: Mapping[str, Sequence[str]], *,
                           jobs: Mapping[str, str] | None = None) -> ServerHandle:
        """A server whose port and config exist (agents can list it) but which is not running
        yet: its start() brings it up."""
        http_port = free_port()
        path, port = write_server_config(root, self.pki,
                                         extra=self.config(http_port, agents, jobs))
        daemon = Daemon("server", ["server", "--config", str(path)], root / "server.log")
        self.daemons.append(daemon)
        return ServerHandle(root, self.pki, port, path, daemon, http_port)

    def key(self, sha256: str) -> str:
        return f"{PREFIX}objects/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def library_listing(server: ServerHandle, token: str) -> dict[str, str]:
    """{library path: sha256} of every photo the server's web API lists, level by level."""
    listed: dict[str, str] = {}
    folders = [""]
    while folders:
        folder = folders.pop()
        level = web_get(server, "/api/v1/library?folder=" + urllib.parse.quote(folder), token)
        assert not level["truncated"], folder
        folders += [f"{folder}/{name}".lstrip("/") for name in level["folders"]]
        listed.update({p["library_path"]: p["sha256"] for p in level["photos"]})
    return listed


def expected_files(agent: AgentHandle) -> dict[tuple[str, str, str], str]:
    """{(agent, watch, relative path): sha256} of every file in the agent's folders."""
    return {(agent.agent_id, watch, rel): sha
            for watch, folder in agent.watches.items()
            for rel, sha in tree_hashes(folder).items()}


def synced(agents: Sequence[AgentHandle]) -> bool:
    """Every agent holds an acknowledgement for exactly its folders and queues nothing."""
    return all(queued_count(a.buffer) == 0
               and {(a.agent_id, w, r): s for (w, r), s in acknowledged_files(a.buffer).items()}
               == expected_files(a) for a in agents)


def verify_installation(catalog_of: ServerHandle, out: ScaleOut,
                        agents: Sequence[AgentHandle]) -> Verification:
    """Every file of every agent is in the shared catalog at its path, once, with its hash;
    every object the catalog names is in the bucket and hashes to its name; the bucket holds
    nothing else (no staging object, no multipart upload) and the ledger no upload. Counted
    into the chaos tally; the caller asserts report.problems is empty."""
    report = Verification()
    expected: dict[tuple[str, str, str], str] = {}
    for agent in agents:
        expected.update(expected_files(agent))
        if queued_count(agent.buffer):
            report.problem(f"{agent.agent_id}: {queued_count(agent.buffer)} files still queued")
    rows = catalog_rows(catalog_of, "SELECT l.agent_id, l.watch_name, l.rel_path, v.sha256 "
                        "FROM versions v JOIN locations l ON l.id = v.location_id "
                        "WHERE l.agent_id != '_derived'")
    recorded = Counter((str(a), str(w), str(r)) for a, w, r, _s in rows)
    heads = {(str(a), str(w), str(r)): str(s) for a, w, r, s in rows}
    for place, sha in expected.items():
        if place not in heads:
            report.photos_lost += 1
            report.problem(f"lost: {place} is not in the catalog")
        elif recorded[place] > 1:
            report.photos_duplicated += 1
            report.problem(f"duplicated: {place} recorded {recorded[place]} times")
        elif heads[place] != sha:
            report.photos_corrupted += 1
            report.problem(f"corrupted: {place} recorded as {heads[place][:12]}")
        else:
            report.photos_verified += 1
    for place in heads.keys() - expected.keys():
        report.problem(f"the catalog holds {place}, which no agent has")
    _check_bucket(out, {str(r[3]) for r in rows}, report)
    return report


def _check_bucket(out: ScaleOut, shas: set[str], report: Verification) -> None:
    keys = set(out.s3.keys(out.bucket))
    for sha in sorted(shas):
        key = out.key(sha)
        if key not in keys:
            report.objects_mismatched += 1
            report.problem(f"object {sha[:12]} is not in the bucket")
            continue
        report.objects_checked += 1
        if hashlib.sha256(out.s3.read(out.bucket, key)).hexdigest() != sha:
            report.objects_mismatched += 1
            report.problem(f"object {sha[:12]} in the bucket does not hash to its name")
    stray = sorted(k for k in keys if not k.startswith(f"{PREFIX}objects/"))
    if stray:
        report.problem(f"left in the bucket: {stray}")
    if out.s3.multipart_uploads(out.bucket):
        report.problem(f"multipart uploads left: {out.s3.multipart_uploads(out.bucket)}")


def ledger(server: ServerHandle) -> dict[str, tuple[str, int]]:
    """{sha256: (upload id, bytes in recorded parts)} of the shared multipart ledger."""
    rows = catalog_rows(server, "SELECT u.sha256, u.upload_id, COALESCE(SUM(p.size), 0) "
                        "FROM multipart_uploads u LEFT JOIN multipart_parts p "
                        "ON p.sha256 = u.sha256 GROUP BY u.sha256, u.upload_id")
    return {str(s): (str(u), int(n)) for s, u, n in rows}


def finish(report: Verification) -> None:
    """Counts the scenario's verification into the chaos summary; fails on any problem."""
    record(report)
    assert not report.problems, report.summary()
