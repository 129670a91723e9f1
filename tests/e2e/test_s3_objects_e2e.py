"""Photos in an S3-compatible store (`storage.objects: s3://bucket/prefix`), end to end: a real
server and real agents over mutual TLS, the bytes in a bucket of moto's standalone server (the
tests' only S3 endpoint, reached through the same boto3 code as AWS). A first sync lands byte
for byte at the content addresses, dedup works across agents (proofs of possession read
ranges back from S3), a server SIGKILLed mid-upload resumes from a part boundary after its
restart, and a job reads its input from the bucket."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import (
    Daemon,
    ServerHandle,
    acknowledged_files,
    catalog_rows,
    make_agent,
    run_cli,
    sha256_of,
    start_server,
    tree_hashes,
    wait_until,
)
from tests.support.photos import make_jpeg, make_raw_like
from tests.support.pki import TestPki
from tests.support.s3 import S3Endpoint, s3_endpoint  # noqa: F401

pytestmark = pytest.mark.e2e

MB = 1_000_000
PREFIX = "studio/"


def _s3_server(root: Path, pki: TestPki, endpoint: S3Endpoint, bucket: str,
               extra: dict[str, Any] | None = None) -> ServerHandle:
    config: dict[str, Any] = {"storage": {
        "objects": f"s3://{bucket}/{PREFIX}",
        "s3": {"endpoint_url": endpoint.url, "region": "us-east-1"}}}
    config.update(extra or {})
    return start_server(root, pki, extra=config)


def _key(sha: str) -> str:
    return f"{PREFIX}objects/{sha[:2]}/{sha[2:4]}/{sha}"


def _stop(server: ServerHandle) -> None:
    if server.daemon.running:
        try:
            server.daemon.terminate(20)
        except AssertionError:
            server.daemon.kill()


@pytest.fixture
def bucket(s3_endpoint: S3Endpoint) -> str:  # noqa: F811
    return s3_endpoint.new_bucket()


def test_a_first_sync_lands_byte_for_byte_in_the_bucket(
        tmp_path: Path, pki: TestPki, s3_endpoint: S3Endpoint, bucket: str) -> None:  # noqa: F811
    """Small JPEGs and RAWs over 10 MB: every one at objects/ab/cd/<sha256> under the prefix,
    its bytes the agent's; no staging object or multipart upload is left; nothing is written
    to the server's local objects/ or library tree (in S3 mode the library is the catalog)."""
    server = _s3_server(tmp_path / "server", pki, s3_endpoint, bucket)
    try:
        agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
        photos = agent.watches["photos"]
        for i in range(3):
            make_jpeg(photos / "2024" / f"IMG_{i:04d}.jpg", seed=300 + i)
        make_raw_like(photos / "shoot" / "DSC_0001.NEF", seed=301, size_bytes=12 * MB)
        make_raw_like(photos / "shoot" / "DSC_0002.NEF", seed=302, size_bytes=23 * MB)
        summary = agent.once()
        assert summary["files_uploaded"] == 5, summary
        expected = tree_hashes(photos)
        keys = s3_endpoint.keys(bucket)
        assert keys == sorted(_key(sha) for sha in set(expected.values())), keys
        for rel, sha in expected.items():
            data = s3_endpoint.read(bucket, _key(sha))
            assert data == (photos / rel).read_bytes(), rel
        assert s3_endpoint.multipart_uploads(bucket) == []
        assert server.objects() == []
        assert not any(p.is_file() for p in (server.storage / "library").rglob("*"))
        rows = catalog_rows(server,
                            "SELECT l.rel_path, v.sha256, v.library_path FROM versions v "
                            "JOIN locations l ON l.id = v.location_id")
        assert {r: s for r, s, _p in rows} == expected
        assert {p for _r, _s, p in rows} == {f"library/laptop/photos/{r}" for r in expected}
        assert catalog_rows(server,
                            "SELECT COUNT(*) FROM multipart_uploads") == [(0,)]
        assert agent.once()["files_uploaded"] == 0, "a second run sends nothing"
    finally:
        _stop(server)


def test_the_same_photos_from_two_agents_are_stored_once(
        tmp_path: Path, pki: TestPki, s3_endpoint: S3Endpoint, bucket: str) -> None:  # noqa: F811
    """The second agent's copies are answered HAVE after it proves it holds them (the proof's
    ranges read back from S3): no byte is sent and each content is in the bucket once."""
    server = _s3_server(tmp_path / "server", pki, s3_endpoint, bucket)
    try:
        laptop = make_agent(tmp_path / "laptop", pki, "laptop", server)
        desktop = make_agent(tmp_path / "desktop", pki, "desktop", server)
        for i in range(3):
            src = make_jpeg(laptop.watches["photos"] / f"IMG_{i:04d}.jpg", seed=500 + i)
            copy = desktop.watches["photos"] / "import" / f"copy_{i}.jpg"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, copy)
        big = make_raw_like(laptop.watches["photos"] / "big.NEF", seed=510, size_bytes=11 * MB)
        shutil.copyfile(big, desktop.watches["photos"] / "big-copy.NEF")
        assert laptop.once()["files_uploaded"] == 4
        second = desktop.once()
        assert (second["files_deduplicated"], second["files_uploaded"]) == (4, 0), second
        assert second["raw_bytes_sent"] == 0, second
        digests = set(tree_hashes(laptop.watches["photos"]).values())
        assert s3_endpoint.keys(bucket) == sorted(_key(sha) for sha in digests)
    finally:
        _stop(server)


def test_a_server_killed_mid_upload_resumes_from_a_part_boundary(
        tmp_path: Path, pki: TestPki, s3_endpoint: S3Endpoint, bucket: str,  # noqa: F811
        daemons: list[Daemon], monkeypatch: pytest.MonkeyPatch) -> None:
    """The server is SIGKILLed (faults.py, `after_multipart_part`) once the second part of a
    48 MB RAW is in S3 and in the catalog's ledger: after the restart the agent is asked for
    the rest from the end of that part, the restarted server verifies the whole object by
    reading it back (it never saw the first bytes), and the object ends intact, nothing left
    in staging."""
    monkeypatch.setenv("PHOTONIC_FAULT_POINT", "after_multipart_part")
    monkeypatch.setenv("PHOTONIC_FAULT_AFTER", "2")
    server = _s3_server(tmp_path / "server", pki, s3_endpoint, bucket)
    monkeypatch.delenv("PHOTONIC_FAULT_POINT")
    try:
        agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
        size = 48 * MB
        big = make_raw_like(agent.watches["photos"] / "DSC_9000.NEF", seed=9000,
                            size_bytes=size)
        sha = sha256_of(big)
        daemons.append(agent.daemon)
        agent.start()
        wait_until(lambda: not server.daemon.running, 60, 0.05,
                   f"the server to die at the fault point; log:\n{server.daemon.log()[-2000:]}")
        agent.daemon.terminate()
        [(kept,)] = catalog_rows(server,
                                 "SELECT SUM(size) FROM multipart_parts WHERE sha256 = ?", (sha,))
        assert kept == 16 * 1024 * 1024, "two parts of 8 MiB"
        assert not any(k.startswith(f"{PREFIX}objects/") for k in s3_endpoint.keys(bucket))
        mark = len(server.daemon.log())
        server.start()
        summary = agent.once()
        assert summary["files_uploaded"] == 1, summary
        assert summary["raw_bytes_sent"] <= size - kept, (summary, kept)
        assert "event=s3_upload_read_back" in server.daemon.log()[mark:]
        assert s3_endpoint.read(bucket, _key(sha)) == big.read_bytes()
        assert s3_endpoint.keys(bucket) == [_key(sha)], "no staging object is left"
        assert s3_endpoint.multipart_uploads(bucket) == []
        assert acknowledged_files(agent.buffer) == {("photos", "DSC_9000.NEF"): sha}
    finally:
        _stop(server)


def test_a_job_reads_its_input_from_the_bucket_and_stores_its_output_there(
        tmp_path: Path, pki: TestPki, s3_endpoint: S3Endpoint, bucket: str,  # noqa: F811
        daemons: list[Daemon]) -> None:
    """A face crop of a photo only a laptop (no worker) synced: the worker fetches the input
    from the server, which reads it from S3 (FetchBlob through the BlobStore), and the crop it
    uploads is stored in the bucket at its content address."""
    from tests.support.models import astronaut_jpeg, fetched_models

    models = fetched_models(tmp_path / "models")
    agents: dict[str, Any] = {"admin": {"scopes": ["admin"]},
                              "worker": {"scopes": ["sync", "work"]}}
    server = _s3_server(tmp_path / "server", pki, s3_endpoint, bucket, {"agents": agents})
    try:
        laptop = make_agent(tmp_path / "laptop", pki, "laptop", server)
        photo = astronaut_jpeg(laptop.watches["photos"] / "astronaut.jpg")
        assert laptop.once()["files_uploaded"] == 1
        worker = make_agent(tmp_path / "worker", pki, "worker", server,
                            extra={"work": {"enabled": True, "models_dir": str(models),
                                            "executors": ["facecrop"]}})
        daemons.append(worker.daemon)
        worker.start()
        admin = make_agent(tmp_path / "admin", pki, "admin", server)
        proc = run_cli("jobs", "submit", "facecrop", "--path", "laptop/photos/astronaut.jpg",
                       "--wait", "--json", "--config", str(admin.config_path), timeout_s=240)
        assert proc.returncode == 0, f"{proc.stderr}\n{worker.daemon.log()[-3000:]}"
        done = json.loads(proc.stdout)
        assert done["state"] == "JOB_STATE_COMPLETED" and done["workerId"] == "worker", done
        [output] = done["outputs"]
        assert output["libraryPath"] == "_derived/facecrop/laptop/photos/astronaut.jpg.jpg"
        crop = s3_endpoint.read(bucket, _key(output["sha256"]))
        assert crop[:2] == b"\xff\xd8" and len(crop) == int(output["size"])
        assert _key(sha256_of(photo)) in s3_endpoint.keys(bucket)
        out_dir = tmp_path / "downloads"
        proc = run_cli("jobs", "download", done["jobId"], "-o", str(out_dir), "--config",
                       str(admin.config_path), timeout_s=120)
        assert proc.returncode == 0, proc.stderr
        assert (out_dir / "astronaut.jpg").read_bytes() == crop
    finally:
        _stop(server)
