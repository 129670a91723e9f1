"""Scale-out under SIGKILL (issue 20): two real servers share one PostgreSQL database (catalog,
job queue, upload claims, events) and one bucket of moto's S3 server; real agents over mutual
TLS list both in server_endpoints. A server killed mid-upload leaves its multipart upload in
the shared ledger and the other server resumes it from the recorded parts; a job leased
through a server that dies is finished through the other. Nothing is lost, duplicated or left
half-written, and both servers show the same library. (A dashboard on one server seeing the
other's commits is tests/e2e/test_shared_events_e2e.py.)"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
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
    AgentHandle,
    Daemon,
    ServerHandle,
    acknowledged_files,
    catalog_rows,
    make_agent,
    metric_total,
    sha256_of,
    wait_until,
    web_token,
)
from tests.support.jobs import Admin
from tests.support.logrecords import record_fields
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


def _events(daemon: Daemon, name: str, sha256: str) -> list[dict[str, str]]:
    """The fields of the daemon's `event=name` records about one content."""
    found = [record_fields(line) for line in daemon.log().splitlines()
             if f"event={name} " in line]
    return [f for f in found if f.get("sha256") == sha256[:16]]


@dataclass
class _Scene:
    """Servers A and B of one installation; the laptop lists [A, B], the desktop [B, A]."""

    a: ServerHandle
    b: ServerHandle
    laptop: AgentHandle
    desktop: AgentHandle
    shared: Path
    """A photo both agents hold (the desktop a copy under another name)."""

    def raws_of_laptop(self) -> dict[str, str]:
        return {sha256_of(p): p.name for p in self.laptop.watches["photos"].rglob("*.NEF")}


def _two_agents_syncing(tmp_path: Path, scaleout: ScaleOut, fault: str,
                        after: int) -> _Scene:
    """A (armed with the fault) and B running; both agents started, each with JPEGs, RAWs of
    more than two 8 MiB parts and the shared photo. The laptop sends one file at a time, so
    A's fault point is hit by exactly one upload."""
    scopes = {"laptop": ["sync"], "desktop": ["sync"]}
    with fault_armed(fault, after):
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
               f"A to die at {fault}; A's log:\n{a.daemon.log()[-2000:]}")
    TALLY.server_kills += 1
    return _Scene(a, b, laptop, desktop, shared)


def _wait_synced(scene: _Scene) -> None:
    wait_until(lambda: synced([scene.laptop, scene.desktop]), SYNC_S, 0.25,
               f"both agents acknowledged everything; laptop log:\n"
               f"{scene.laptop.daemon.log()[-3000:]}\nB's log:\n{scene.b.daemon.log()[-3000:]}")


def _verify_with_a_restarted(scene: _Scene, scaleout: ScaleOut) -> None:
    """A comes back (its start-up recovery must remove nothing a live upload needs); then
    the whole installation is verified, the shared photo is one object, and A and B list
    the same library. (An upload A began in S3 but had not yet recorded in the ledger when
    it died is an orphan that recovery aborts once ORPHAN_AGE_S has passed; moto dates
    every multipart upload years ago, so here A's start-up recovery already takes it.)"""
    scene.a.start()
    report = verify_installation(scene.b, scaleout, [scene.laptop, scene.desktop])
    if ledger(scene.b):
        report.problem(f"the multipart ledger still holds {ledger(scene.b)}")
    keys = scaleout.s3.keys(scaleout.bucket)
    if keys.count(scaleout.key(sha256_of(scene.shared))) != 1:
        report.problem("the shared photo is not stored exactly once")
    _compare_listings(scene.a, scene.b, report)
    finish(report)


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
    scene = _two_agents_syncing(tmp_path, scaleout, "after_multipart_part", 1)
    left = ledger(scene.b)
    raws = scene.raws_of_laptop()
    [(killed, (upload_id, kept))] = [(s, v) for s, v in left.items() if s in raws]
    assert kept == DEFAULT_PART_BYTES, left

    _wait_synced(scene)
    [resumed] = _events(scene.b.daemon, "s3_upload_resumed", killed)
    assert (resumed["upload"], resumed["offset"], resumed["read_back"]) == (
        upload_id, str(DEFAULT_PART_BYTES), "True"), resumed
    assert _events(scene.b.daemon, "s3_upload_read_back", killed), \
        f"B did not verify {raws[killed]} by reading it back"
    _verify_with_a_restarted(scene, scaleout)


def test_a_server_killed_between_commit_and_acknowledgement_records_nothing_twice(
        tmp_path: Path, scaleout: ScaleOut) -> None:
    """As above, but A dies (fault point after_catalog_commit, its second commit) after the
    shared catalog holds a batch of the laptop's photos and before the laptop hears
    COMMITTED. The laptop offers them again to B, which already knows them as the laptop's:
    HAVE, no byte sent, no second version. Verified as above."""
    scene = _two_agents_syncing(tmp_path, scaleout, "after_catalog_commit", 2)
    in_catalog = {(str(w), str(r)) for w, r in catalog_rows(
        scene.b, "SELECT watch_name, rel_path FROM locations WHERE agent_id = 'laptop'")}
    unacknowledged = in_catalog - acknowledged_files(scene.laptop.buffer).keys()
    assert unacknowledged, "A died with committed photos the laptop had not heard of"
    _wait_synced(scene)
    versions = catalog_rows(scene.b, "SELECT MAX(v.version) FROM versions v JOIN locations l "
                            "ON l.id = v.location_id WHERE l.agent_id = 'laptop'")
    assert versions == [(1,)], "a photo offered again was recorded as a new version"
    stored_again = [(f["watch"], f["path"]) for f in map(record_fields,
                                                         scene.b.daemon.log().splitlines())
                    if f.get("event") == "file_committed" and f.get("agent") == "laptop"]
    assert not unacknowledged & set(stored_again), "B took bytes A had committed"
    _verify_with_a_restarted(scene, scaleout)


def test_a_raw_both_agents_hold_is_finished_by_the_other_agent_when_its_server_dies(
        tmp_path: Path, scaleout: ScaleOut) -> None:
    """The laptop (on A, bandwidth-limited) streams a 24 MB RAW; the desktop (on B) holds a
    copy under another name and offers it to B while A holds the upload's claim (an advisory
    lock in the shared database), or just after. A is SIGKILLed once the ledger holds a
    part: its claim goes with its database session, and B continues A's multipart upload
    (same upload id, from a recorded part) for whichever agent asks first, the desktop or
    the laptop moved over. The RAW is one object in the bucket, at both agents' paths in
    the catalog, and nothing is left staged."""
    scopes = {"laptop": ["sync"], "desktop": ["sync"]}
    a = scaleout.server(tmp_path / "a", scopes)
    b = scaleout.server(tmp_path / "b", scopes)
    laptop = make_agent(tmp_path / "laptop", scaleout.pki, "laptop", [a.endpoint, b.endpoint],
                        extra={"network": {"max_bandwidth": "4MB/s", "chunk_size": "1MiB"}})
    desktop = make_agent(tmp_path / "desktop", scaleout.pki, "desktop",
                         [b.endpoint, a.endpoint])
    raw = make_raw_like(laptop.watches["photos"] / "DSC_5000.NEF", seed=5000,
                        size_bytes=24 * MB)
    sha = sha256_of(raw)
    scaleout.daemons += [laptop.daemon, desktop.daemon]
    laptop.start()
    wait_until(lambda: ledger(b).get(sha, ("", 0))[1] > 0, SYNC_S, 0.05,
               f"a part of the RAW in the ledger; laptop log:\n{laptop.daemon.log()[-2000:]}")
    shutil.copyfile(raw, desktop.watches["photos"] / "copy-of-5000.NEF")
    desktop.start()
    desktop.daemon.wait_for_log(f"endpoint={b.endpoint}")
    upload_id, kept = ledger(b)[sha]
    a.daemon.kill()
    TALLY.server_kills += 1

    wait_until(lambda: synced([laptop, desktop]), SYNC_S, 0.25,
               f"both agents acknowledged the RAW; B's log:\n{b.daemon.log()[-3000:]}")
    [resumed] = _events(b.daemon, "s3_upload_resumed", sha)
    assert resumed["upload"] == upload_id and resumed["read_back"] == "True", resumed
    assert int(resumed["offset"]) >= kept and int(resumed["offset"]) % DEFAULT_PART_BYTES == 0
    scene = _Scene(a, b, laptop, desktop, raw)
    _verify_with_a_restarted(scene, scaleout)


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
    wait_until(lambda: metric_total(a, "photonic_jobs_workers_connected") == 1, 60, 0.1,
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
    started = [(f["endpoint"], f["attempt"]) for f in map(record_fields,
                                                          worker.daemon.log().splitlines())
               if f.get("event") == "job_started" and f.get("job") == job_id]
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
