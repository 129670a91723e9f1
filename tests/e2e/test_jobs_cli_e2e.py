"""`photonic jobs` against a real server daemon over mutual TLS with the admin certificate:
submit (photo hashes and ZIP uploads), list, status, cancel, and the refusals a person sees
(hostile archives, unknown job types, unknown photos). Jobs here stay PENDING: no worker runs."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from photonic.jobs_model import WorkDone, WorkFailed
from photonic.v1 import jobs_pb2
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    make_agent,
    run_cli,
    sha256_of,
    start_server,
)
from tests.support.jobs import ScriptedWorker
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import library_files, stored_digests

pytestmark = pytest.mark.e2e

MiB = 1 << 20
JOB_FIELDS = {f.json_name for f in jobs_pb2.Job.DESCRIPTOR.fields}


def _admin(tmp_path: Path, pki: TestPki, server: ServerHandle) -> list[str]:
    """The --config flags of an agent.yaml holding the admin certificate."""
    admin = make_agent(tmp_path / "admin", pki, "admin", server)
    return ["--config", str(admin.config_path)]


def _synced_photos(tmp_path: Path, pki: TestPki, server: ServerHandle,
                   count: int = 2) -> tuple[AgentHandle, list[str]]:
    """A laptop that synced `count` JPEGs; their SHA-256s."""
    laptop = make_agent(tmp_path / "laptop", pki, "laptop", server)
    paths = [make_jpeg(laptop.watches["photos"] / f"IMG_{i}.jpg", seed=40 + i)
             for i in range(count)]
    summary = laptop.once()
    assert summary["files_uploaded"] == count, summary
    return laptop, [sha256_of(p) for p in paths]


def _jobs(*args: str) -> tuple[int, str, str]:
    proc = run_cli("jobs", *args)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def _json(*args: str) -> Any:
    code, out, err = _jobs(*args)
    assert code == 0, err
    return json.loads(out)


def test_submit_json_list_status_and_cancel_a_pending_job(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """submit --json prints a PENDING Job with every field under its camelCase name; list and
    status show it; cancel makes it CANCELLED, and status agrees afterwards."""
    admin = _admin(tmp_path, pki, server)
    _, (sha, _) = _synced_photos(tmp_path, pki, server)
    job = _json("submit", "bgremove", "--photo", sha, "--param", "threshold=0.4",
                "--priority", "3", "--json", *admin)
    assert set(job) >= JOB_FIELDS - {"batch"}, set(job) ^ JOB_FIELDS
    assert job["state"] == "JOB_STATE_PENDING" and job["kind"] == "bgremove"
    assert job["inputSha256"] == [sha] and job["priority"] == 3
    assert json.loads(job["paramsJson"]) == {"threshold": 0.4}
    assert job["submitter"] == "admin"
    listed = _json("list", "--json", *admin)
    assert [j["jobId"] for j in listed] == [job["jobId"]]
    assert _json("list", "--state", "completed", "--json", *admin) == []
    assert _json("status", job["jobId"], "--json", *admin)["state"] == "JOB_STATE_PENDING"
    code, out, _ = _jobs("status", job["jobId"], *admin)
    assert code == 0 and job["jobId"] in out and "PENDING" in out
    cancelled = _json("cancel", job["jobId"], "--json", *admin)
    assert cancelled["jobId"] == job["jobId"] and cancelled["state"] == "JOB_STATE_CANCELLED"
    assert _json("status", job["jobId"], "--json", *admin)["state"] == "JOB_STATE_CANCELLED"


def test_several_photos_make_a_batch_with_one_child_each(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """Two --photo flags: a batch parent counting two pending children, shown by status."""
    admin = _admin(tmp_path, pki, server)
    _, shas = _synced_photos(tmp_path, pki, server)
    args = [a for sha in shas for a in ("--photo", sha)]
    batch = _json("submit", "facecrop", *args, "--json", *admin)
    assert batch["kind"] == "batch" and batch["batchKind"] == "facecrop"
    assert batch["batch"]["total"] == 2 and batch["batch"]["pending"] == 2
    code, out, _ = _jobs("status", batch["jobId"], *admin)
    assert code == 0 and "2 total" in out and out.count("PENDING") >= 2


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def _bomb(path: Path) -> Path:
    """200 MB of zeros deflated (~200 KB), beside a real photo."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("ok.jpg", os.urandom(2000))
        with zf.open("bomb.jpg", "w", force_zip64=True) as w:
            zeros = bytes(MiB)
            for _ in range(200):
                w.write(zeros)
    return path


def _server_files(server: ServerHandle) -> set[str]:
    """Every object and library entry on the server (partial spool files excluded)."""
    return ({f"objects/{sha}" for sha in stored_digests(server)}
            | {f"library/{path}" for path in library_files(server)})


@pytest.mark.parametrize("archive, needle", [
    ("escape", "'../evil.jpg' points outside"),
    ("bomb", "'bomb.jpg' would expand"),
    ("not-a-zip", "not a ZIP archive"),
])
def test_a_hostile_zip_is_refused_and_nothing_is_extracted(
        tmp_path: Path, pki: TestPki, server: ServerHandle, archive: str, needle: str) -> None:
    """A `../` entry, a deflate bomb and a non-ZIP: exit 1 with one sentence naming the
    problem, no new object or library file on the server, no job queued."""
    admin = _admin(tmp_path, pki, server)
    photo = os.urandom(3000)
    if archive == "escape":
        path = _zip(tmp_path / "escape.zip", {"good.jpg": photo, "../evil.jpg": photo})
    elif archive == "bomb":
        path = _bomb(tmp_path / "bomb.zip")
    else:
        path = tmp_path / "photos.zip"
        path.write_bytes(b"this is a text file, not an archive\n" * 100)
    before = _server_files(server)
    code, out, err = _jobs("submit", "bgremove", "--zip", str(path), *admin)
    assert code == 1, (out, err)
    assert err.startswith("photonic: ") and err.count("\n") == 1 and needle in err, err
    assert _server_files(server) == before
    assert not list(server.root.rglob("evil.jpg"))
    assert _json("list", "--json", *admin) == []


def test_a_zip_of_images_becomes_a_batch(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """Images in the archive become one pending child each; other files are skipped."""
    admin = _admin(tmp_path, pki, server)
    a = make_jpeg(tmp_path / "src" / "a.jpg", seed=7)
    b = make_jpeg(tmp_path / "src" / "b.jpg", seed=8)
    path = _zip(tmp_path / "shoot.zip", {"shoot/a.jpg": a.read_bytes(),
                                        "shoot/b.jpg": b.read_bytes(), "readme.txt": b"hi",
                                        "__MACOSX/shoot/._a.jpg": b"junk"})
    batch = _json("submit", "bgremove", "--zip", str(path), "--json", *admin)
    assert batch["kind"] == "batch" and batch["batch"]["total"] == 2
    children = _json("list", "--children", "--json", *admin)
    inputs = {sha for j in children if j["parentId"] == batch["jobId"]
              for sha in j["inputSha256"]}
    assert inputs == {sha256_of(a), sha256_of(b)}


def test_an_unknown_job_type_is_a_clear_invalid_argument(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    admin = _admin(tmp_path, pki, server)
    _, (sha, _) = _synced_photos(tmp_path, pki, server)
    code, _, err = _jobs("submit", "sharpen", "--photo", sha, *admin)
    assert code == 1
    assert err.startswith("photonic: unknown job type 'sharpen'") and "bgremove" in err, err


def test_an_unknown_photo_is_not_found(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    admin = _admin(tmp_path, pki, server)
    code, _, err = _jobs("submit", "bgremove", "--photo", "0" * 64, *admin)
    assert code == 1
    assert err.startswith("photonic: the server holds no photo 000000000000"), err
    code, _, err = _jobs("status", "no-such-job", *admin)
    assert code == 1 and err.startswith("photonic: no job 'no-such-job'"), err


def test_a_sync_scoped_certificate_cannot_submit(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """The laptop's own certificate (sync scope) is refused with PERMISSION_DENIED's sentence."""
    _, (sha, _) = _synced_photos(tmp_path, pki, server)
    code, _, err = _jobs("submit", "bgremove", "--photo", sha, "--server", server.endpoint,
                         "--cert", str(pki.agent_cert("laptop")),
                         "--key", str(pki.agent_key("laptop")), "--ca", str(pki.ca))
    assert code == 1 and err.startswith("photonic: ") and "admin" in err, err


def test_wait_reports_a_failed_child_and_download_saves_the_outputs(
        tmp_path: Path, pki: TestPki, daemons: list[Daemon]) -> None:
    """A batch of two photos with --wait, worked by a scripted worker that completes one child
    and fails the other: --wait exits 1 saying 1 of 2 failed; download writes the completed
    child's output under the name the worker gave it, byte for byte."""
    server = start_server(tmp_path / "server", pki, extra={"agents": {
        "admin": {"scopes": ["admin"]}, "worker": {"scopes": ["sync", "work"]}}})
    daemons.append(server.daemon)
    admin = _admin(tmp_path, pki, server)
    _, shas = _synced_photos(tmp_path, pki, server)
    waiting = Daemon("jobs-wait", ["jobs", "submit", "bgremove", "--photo", shas[0],
                                   "--photo", shas[1], "--wait", *admin],
                     tmp_path / "wait.log").start()
    daemons.append(waiting)
    worker = ScriptedWorker(server, "worker", ["bgremove"], max_concurrent=2)
    result = b"\x89PNG cut out" * 2000
    try:
        for _ in range(2):
            job = worker.next_assignment().job
            if job.input_sha256 == (shas[0],):
                output = worker.upload(job, result, "IMG_0.png")
                worker.send(WorkDone(job.job_id, job.attempts, (output,), duration_ms=5))
            else:
                worker.send(WorkFailed(job.job_id, job.attempts, "no subject found", False))
        assert waiting.proc is not None and waiting.proc.wait(60) == 1, waiting.log()
    finally:
        worker.close()
    assert "1 failed of 2 jobs" in waiting.log(), waiting.log()
    [batch] = _json("list", "--json", *admin)
    out_dir = tmp_path / "results"
    code, out, err = _jobs("download", batch["jobId"], "-o", str(out_dir), *admin)
    assert code == 0, err
    assert (out_dir / "IMG_0.png").read_bytes() == result
    assert sorted(p.name for p in out_dir.iterdir()) == ["IMG_0.png"]
    assert f"wrote {out_dir / 'IMG_0.png'}" in out and "1 FAILED" in err
