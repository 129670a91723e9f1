"""`photonic server migrate`: a populated embedded installation (photos of two agents, a RAW
over the multipart size, a second version, a parked conflict, a web token, a pending job)
moves to PostgreSQL and an S3 bucket (moto's server); every table and object is proved; a
server started on the new engines, with an empty storage folder, serves the same library and
bytes, the agent sends nothing again, and the token and job are there. A migration SIGKILLed
mid-copy (rows, then objects) resumes and ends the same, never copying a row twice."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from photonic.server.pg_db import connect
from tests.support.daemons import (
    AgentHandle,
    ServerHandle,
    config_catalog_rows,
    free_port,
    make_agent,
    run_cli,
    start_server,
    web_get,
    web_token,
)
from tests.support.photos import make_jpeg, make_raw_like
from tests.support.pki import TestPki
from tests.support.s3 import S3Endpoint, s3_endpoint  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.local_objects(
    "migrates an embedded installation (local objects) to PostgreSQL and S3")]

MB = 1_000_000
PREFIX = "moved/"


def _populated(tmp_path: Path, pki: TestPki) -> tuple[ServerHandle, AgentHandle, str]:
    """An embedded server (stopped on return) holding two agents' photos, a version, a
    parked conflict, a web token and a pending job; returns the token too."""
    port = free_port()
    server = start_server(tmp_path / "server", pki, extra={"server": {"web_ui_port": port}})
    server.http_port = port
    laptop = make_agent(tmp_path / "laptop", pki, "laptop", server,
                        extra={"sync": {"conflict_resolution": "manual"}})
    desktop = make_agent(tmp_path / "desktop", pki, "desktop", server)
    photos = laptop.watches["photos"]
    for i in range(4):
        make_jpeg(photos / "2024" / f"IMG_{i:04d}.jpg", seed=900 + i)
    make_raw_like(photos / "shoot" / "DSC_0900.NEF", seed=990, size_bytes=12 * MB)
    make_jpeg(desktop.watches["photos"] / "same.jpg", seed=900)  # dedup: one object
    assert laptop.once()["files_uploaded"] == 5
    desktop.once()
    make_jpeg(photos / "2024" / "IMG_0000.jpg", seed=999)  # a second version
    assert laptop.once()["files_uploaded"] == 1
    shutil.rmtree(laptop.buffer)  # a lost index: the rewrite below is parked as a conflict
    make_jpeg(photos / "2024" / "IMG_0001.jpg", seed=998)
    assert laptop.once()["conflicts"] == 1
    token = web_token(server, "ops")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/jobs", method="POST",
        data=json.dumps({"kind": "bgremove",
                         "library_paths": ["laptop/photos/2024/IMG_0002.jpg"]}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 201
    server.daemon.terminate()
    return server, laptop, token


def _migrate(server: ServerHandle, pg_url: str, endpoint: S3Endpoint, bucket: str,
             fault: tuple[str, int] | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PHOTONIC_FAULT_POINT": fault[0], "PHOTONIC_FAULT_AFTER": str(fault[1])} \
        if fault else {}
    return run_cli("server", "migrate", "--config", str(server.config_path), "--to", pg_url,
                   "--objects", f"s3://{bucket}/{PREFIX}", "--s3-endpoint-url", endpoint.url,
                   "--s3-region", "us-east-1", "--reread", env=env, check=False)


def _library(server: ServerHandle, token: str) -> dict[str, Any]:
    """Every level of the library listing, from the top, as the web API answers it."""
    out: dict[str, Any] = {}
    folders = [""]
    while folders:
        folder = folders.pop()
        level = web_get(server, f"/api/v1/library?folder={folder}", token)
        out[folder] = ({p["name"]: p["sha256"] for p in level["photos"]}, level["folders"])
        folders += [f"{folder}/{f}".strip("/") for f in level["folders"]]
    return out


def test_an_embedded_installation_moves_to_postgresql_and_s3_and_serves_the_same(
        tmp_path: Path, pki: TestPki, pg_url: str, s3_endpoint: S3Endpoint) -> None:  # noqa: F811
    old, laptop, token = _populated(tmp_path, pki)
    old.start()
    before = _library(old, token)
    old.daemon.terminate()
    bucket = s3_endpoint.new_bucket()
    objects = {p.name: p for p in (old.storage / "objects").rglob("*") if p.is_file()}

    first = _migrate(old, pg_url, s3_endpoint, bucket)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "migration verified" in first.stdout, first.stdout
    assert "MISMATCH" not in first.stdout
    with connect(pg_url) as conn:  # planner statistics of the copied rows, not of empty tables
        unanalyzed = conn.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE relname IN ('photos', 'versions', "
            "'locations') AND last_analyze IS NULL").fetchall()
    assert unanalyzed == [], unanalyzed
    for sha, path in objects.items():
        key = f"{PREFIX}objects/{sha[:2]}/{sha[2:4]}/{sha}"
        assert s3_endpoint.read(bucket, key) == path.read_bytes()
    again = _migrate(old, pg_url, s3_endpoint, bucket)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "objects: 0 copied (0 bytes)" in again.stdout, again.stdout

    port = free_port()
    new = start_server(tmp_path / "new", pki, port=old.port, extra={
        "server": {"web_ui_port": port},
        "catalog": {"url": pg_url},
        "storage": {"objects": f"s3://{bucket}/{PREFIX}",
                    "s3": {"endpoint_url": s3_endpoint.url, "region": "us-east-1"}}})
    try:
        new.http_port = port
        assert _library(new, token) == before, "the token or the library did not move"
        for sha, path in objects.items():
            got = web_get(new, f"/api/v1/content/{sha}", token)
            assert got["size"] == path.stat().st_size
        summary = laptop.once()
        assert (summary["files_uploaded"], summary["raw_bytes_sent"]) == (0, 0), summary
        conflicts = web_get(new, "/api/v1/conflicts", token)["conflicts"]
        assert [c["rel_path"] for c in conflicts] == ["2024/IMG_0001.jpg"]
        jobs = web_get(new, "/api/v1/jobs", token)["jobs"]
        assert [j["kind"] for j in jobs] == ["bgremove"]
        assert not (new.storage / "objects").exists() or not any(
            p.is_file() for p in (new.storage / "objects").rglob("*"))
    finally:
        new.daemon.terminate()
    audit = config_catalog_rows(new.config_path, new.storage,
                                "SELECT actor, action, result FROM audit WHERE actor = ?",
                                ("cli:migrate",))
    assert audit == [("cli:migrate", "Migrate", "ok")] * 2


@pytest.mark.parametrize("fault", [("migrate_after_batch", 3), ("migrate_after_object", 2)])
def test_a_migration_killed_mid_copy_resumes_and_ends_the_same(
        tmp_path: Path, pki: TestPki, pg_url: str, s3_endpoint: S3Endpoint,  # noqa: F811
        fault: tuple[str, int]) -> None:
    """SIGKILL after the third committed batch of rows, or after the second object: the run
    dies (-9); the next run finishes, every table's count and digest equal (no row copied
    twice) and every object read back."""
    old, _laptop, _token = _populated(tmp_path, pki)
    bucket = s3_endpoint.new_bucket()
    killed = _migrate(old, pg_url, s3_endpoint, bucket, fault)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    resumed = _migrate(old, pg_url, s3_endpoint, bucket)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "MISMATCH" not in resumed.stdout and "migration verified" in resumed.stdout
    copied = json.dumps(resumed.stdout.splitlines())
    assert ": ok" in copied
