"""Scale-out under SIGKILL (issue 20): two real servers share one PostgreSQL database (catalog,
job queue, upload claims, events) and one bucket of moto's S3 server; real agents over mutual
TLS list both in server_endpoints. A server killed mid-upload leaves its multipart upload in
the shared ledger and the other server resumes it from the recorded parts; a job leased
through a server that dies is finished through the other. Nothing is lost, duplicated or left
half-written, and both servers show the same library. (A dashboard on one server seeing the
other's commits is tests/e2e/test_shared_events_e2e.py.)"""

from __future__ import annotations

import hashlib
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from photonic.server.storage.s3 import DEFAULT_PART_BYTES
from tests.chaos.scaleout import (
    ScaleOut,
    fault_armed,
    finish,
    ledger,
    library_listing,
    synced,
    verify_installation,
)
from tests.chaos.tally import TALLY
from tests.chaos.verify import Verification
from tests.support.daemons import (
    Daemon,
    ServerHandle,
    catalog_rows,
    make_agent,
    sha256_of,
    wait_until,
    web_token,
)
from tests.support.jobs import Admin
from tests.support.photos import make_jpeg, make_raw_like
from tests.support.pki import TestPki
from tests.support.s3 import S3Endpoint, s3_endpoint  # noqa: F401

pytestmark = pytest.mark.chaos

MB = 1_000_000
SYNC_S = 120.0
JOB_S = 120.0
JOBS = {"heartbeat": "1s", "lease": "3s"}
"""Short leases, so the lease a dead server's worker held runs out within seconds."""


@pytest.fixture
def scaleout(pg_url: str, s3_endpoint: S3Endpoint, pki: TestPki,  # noqa: F811
             daemons: list[Daemon]) -> Iterator[ScaleOut]:
    yield ScaleOut(pg_url, s3_endpoint, s3_endpoint.new_bucket(), pki, daemons)


def _event_fields(log: str, name: str) -> list[dict[str, str]]:
    """The key=value fields of every `event=name` line of a daemon's log."""
    return [dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
            for line in log.splitlines() if f"event={name} " in line]


def test_a_server_killed_mid_upload_is_resumed_by_the_other_and_nothing_is_lost(
        tmp_path: Path, scaleout: ScaleOut) -> None:
    """Servers A and B, one catalog, one bucket; the laptop lists [A, B], the desktop [B, A],
    so each starts on its own server; both sync JPEGs, RAWs over two 8 MiB parts and one
    photo they share. A is SIGKILLed (fault point after_multipart_part) as soon as the first
    part of one of the laptop's RAWs is in S3 and in the ledger. The laptop moves to B, which
    resumes that very upload (same upload id, from the recorded part: B logs it and reads the
    object back before acknowledging, having never seen its first bytes). Afterwards, with A
    restarted: every photo of both agents is in the catalog once with its hash, its object in
    the bucket byte for byte, the shared photo stored once, no staging object, multipart
    upload or ledger row left, and A and B list the same library."""
    scopes = {"laptop": ["sync"], "desktop": ["sync"]}
    with fault_armed("after_multipart_part"):
        a = scaleout.server(tmp_path / "a", scopes)
    b = scaleout.server(tmp_path / "b", scopes)
    laptop = make_agent(tmp_path / "laptop", scaleout.pki, "laptop", [a.endpoint, b.endpoint],
                        extra={"network": {"parallel_transfers": 1}})
    desktop = make_agent(tmp_path / "desktop", scaleout.pki, "desktop",
                         [b.endpoint, a.endpoint])
    shots, trip = laptop.watches["photos"] / "shoot", desktop.watches["photos"] / "trip"
    for i in range(4):
        make_jpeg(shots / f"IMG_{i:04d}.jpg", seed=4100 + i)
        make_jpeg(trip / f"IMG_{i:04d}.jpg", seed=4200 + i)
    make_raw_like(shots / "DSC_4101.NEF", seed=4101, size_bytes=20 * MB)
    make_raw_like(shots / "DSC_4102.NEF", seed=4102, size_bytes=18 * MB)
    make_raw_like(trip / "DSC_4201.NEF", seed=4201, size_bytes=20 * MB)
    shared = make_jpeg(laptop.watches["photos"] / "shared.jpg", seed=4999)
    (desktop.watches["photos"] / "import").mkdir()
    shutil.copyfile(shared, desktop.watches["photos"] / "import" / "shared-copy.jpg")
    scaleout.daemons += [laptop.daemon, desktop.daemon]
    laptop.start()
    desktop.start()

    wait_until(lambda: not a.daemon.running, SYNC_S, 0.02,
               f"A to die at the fault point; A's log:\n{a.daemon.log()[-2000:]}")
    TALLY.server_kills += 1
    left = ledger(b)
    big = {sha256_of(p): p.name for p in shots.glob("*.NEF")}
    [(killed, (upload_id, kept))] = [(s, v) for s, v in left.items() if s in big]
    assert kept >= DEFAULT_PART_BYTES, left

    wait_until(lambda: synced([laptop, desktop]), SYNC_S, 0.25,
               f"both agents acknowledged everything; laptop log:\n"
               f"{laptop.daemon.log()[-3000:]}\nB's log:\n{b.daemon.log()[-3000:]}")
    resumed = [f for f in _event_fields(b.daemon.log(), "s3_upload_resumed")
               if f["sha256"] == killed[:16]]
    assert resumed and resumed[0]["upload"].strip('"') == upload_id, resumed
    assert int(resumed[0]["offset"]) == DEFAULT_PART_BYTES and resumed[0]["read_back"] == "True"
    read_back = [f for f in _event_fields(b.daemon.log(), "s3_upload_read_back")
                 if f["sha256"] == killed[:16]]
    assert read_back, f"B did not verify {big[killed]} by reading it back"

    a.start()  # its recovery must remove nothing a live upload needs, and find nothing left
    report = verify_installation(b, scaleout, [laptop, desktop])
    if ledger(b):
        report.problem(f"the multipart ledger still holds {ledger(b)}")
    keys = scaleout.s3.keys(scaleout.bucket)
    if keys.count(scaleout.key(sha256_of(shared))) != 1:
        report.problem("the shared photo is not stored exactly once")
    _compare_listings(a, b, report)
    finish(report)


def _compare_listings(a: ServerHandle, b: ServerHandle, report: Verification) -> None:
    token = web_token(a)  # tokens live in the shared catalog: one serves both servers
    on_a, on_b = library_listing(a, token), library_listing(b, token)
    if on_a != on_b:
        report.problem(f"A and B list different libraries: {set(on_a.items()) ^ set(on_b.items())}")
    rows = catalog_rows(a, "SELECT COUNT(*) FROM locations WHERE agent_id != '_derived'")
    if len([p for p in on_a if not p.startswith("_derived/")]) != rows[0][0]:
        report.problem(f"the listing holds {len(on_a)} photos, the catalog {rows[0][0]}")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.models import fetched_models

    return fetched_models(tmp_path_factory.mktemp("models"))


def _workers_connected(server: ServerHandle) -> float:
    url = f"http://127.0.0.1:{server.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("photonic_jobs_workers_connected"))


def test_a_job_leased_through_a_server_that_dies_is_finished_through_the_other(
        tmp_path: Path, scaleout: ScaleOut, models: Path) -> None:
    """A face crop leased through A (B is not up yet, so A's dispatcher is the only one that
    can lease it) to a worker that lists [A, B]. A is SIGKILLed (fault point
    after_job_output_stored) while the worker uploads the crop through it, before A
    acknowledges it. B comes up meanwhile; the worker's stream to B opens; the lease, no
    longer renewed, runs out and B's expiry loop returns the job to PENDING; B's dispatcher
    hands it to the worker again, and it ends COMPLETED through B.

    tries == 2, honestly: the first attempt ran (its executor finished) and was lost with its
    server, and the queue cannot tell a worker that died from a server that died: the expired
    lease is a failed try (failures + 1), not a hand-back. The worker's own report of that
    attempt waits for A; when A is back it is refused as stale and changes nothing. The crop
    is in the catalog (one job output, one library version) and in the bucket once."""
    from tests.support.models import astronaut_jpeg

    scopes = {"laptop": ["sync"], "worker": ["sync", "work"]}
    with fault_armed("after_job_output_stored"):
        a = scaleout.server(tmp_path / "a", scopes, jobs=JOBS)
    b = scaleout.server_not_started(tmp_path / "b", scopes, jobs=JOBS)
    laptop = make_agent(tmp_path / "laptop", scaleout.pki, "laptop", a)
    photo = astronaut_jpeg(laptop.watches["photos"] / "astronaut.jpg")
    sha = sha256_of(photo)
    assert laptop.once()["files_uploaded"] == 1
    worker = make_agent(tmp_path / "worker", scaleout.pki, "worker", [a.endpoint, b.endpoint],
                        extra={"work": {"enabled": True, "models_dir": str(models),
                                        "executors": ["facecrop"]}})
    scaleout.daemons.append(worker.daemon)
    worker.start()
    wait_until(lambda: _workers_connected(a) == 1, 60, 0.1,
               f"the worker on A; log:\n{worker.daemon.log()[-2000:]}")

    admin_a = Admin(a)
    try:
        job_id = admin_a.submit("facecrop", [sha]).job_id
    finally:
        admin_a.close()
    wait_until(lambda: _job_row(a, job_id)[1] >= 1, 30, 0.02, "A to lease the job")
    b.start()
    wait_until(lambda: not a.daemon.running, JOB_S, 0.05,
               f"A to die as the crop is uploaded; worker log:\n{worker.daemon.log()[-2000:]}")
    TALLY.server_kills += 1

    admin_b = Admin(b)
    try:
        done = admin_b.wait_state(job_id, "COMPLETED", "FAILED", timeout_s=JOB_S)
    finally:
        admin_b.close()
    assert (done.state.value, done.worker_id, done.tries) == ("COMPLETED", "worker", 2), \
        (done.error, done.attempts, done.handbacks)
    started = [(f["endpoint"], f["attempt"]) for f in _event_fields(worker.daemon.log(),
                                                                       "job_started")
               if f["job"] == job_id]
    assert started == [(a.endpoint, "1"), (b.endpoint, str(done.attempts))], started

    a.start()  # the worker's report of attempt 1 reaches A at last, and is refused as stale
    worker.daemon.wait_for_log(f"event=report_refused endpoint={a.endpoint} job={job_id}")
    report = Verification()
    _check_job_output(b, scaleout, job_id, sha, report)
    TALLY.jobs_verified += 1
    finish(report)


def _job_row(server: ServerHandle, job_id: str) -> tuple[str, int]:
    [(state, attempts)] = catalog_rows(server, "SELECT state, attempts FROM jobs "
                                       "WHERE job_id = ?", (job_id,))
    return str(state), int(attempts)


def _check_job_output(server: ServerHandle, out: ScaleOut, job_id: str, input_sha: str,
                      report: Verification) -> None:
    """The completed job has one output, recorded once in the catalog's library, stored once
    in the bucket under its hash, and the job is still COMPLETED after the stale report."""
    admin = Admin(server)
    try:
        job = admin.get(job_id)
    finally:
        admin.close()
    if job.state.value != "COMPLETED" or len(job.outputs) != 1:
        TALLY.job_results_lost += 1
        report.problem(f"job {job_id}: {job.state.value} with {len(job.outputs)} outputs")
        return
    [output] = job.outputs
    rows = catalog_rows(server, "SELECT COUNT(*) FROM job_outputs WHERE job_id = ?", (job_id,))
    if rows != [(1,)]:
        TALLY.job_results_duplicated += 1
        report.problem(f"job {job_id} has {rows[0][0]} output rows")
    versions = catalog_rows(server, "SELECT v.sha256 FROM versions v JOIN locations l "
                            "ON l.id = v.location_id WHERE l.agent_id = '_derived'")
    if versions != [(output.sha256,)]:
        TALLY.job_results_duplicated += 1
        report.problem(f"derived versions in the catalog: {versions}")
    keys = out.s3.keys(out.bucket)
    if sorted(keys) != sorted({out.key(input_sha), out.key(output.sha256)}):
        report.problem(f"the bucket holds {keys}")
    data = out.s3.read(out.bucket, out.key(output.sha256)) if out.key(output.sha256) in keys \
        else b""
    if hashlib.sha256(data).hexdigest() != output.sha256 or data[:2] != b"\xff\xd8":
        TALLY.job_results_lost += 1
        report.problem(f"the crop {output.sha256[:12]} is missing or damaged in the bucket")
