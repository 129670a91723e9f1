"""Jobs worked by real worker agents: `photonic server` and `photonic agent` daemons (work
enabled, the real MediaPipe models) over real mutual TLS, driven as a person drives them with
`photonic jobs`. Cut-outs and face crops of the astronaut, locality (the holder is preferred and
fetches nothing), a worker killed or stopped mid-job, a cancel that kills the executor, a batch
with corrupt photos, and a ZIP."""

from __future__ import annotations

import json
import shutil
import signal
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    free_port,
    make_agent,
    metric_total,
    run_cli,
    sha256_of,
    start_server,
    wait_until,
)
from tests.support.jobs import Admin
from tests.support.models import ASTRONAUT_FACE, astronaut_jpeg, fetched_models
from tests.support.photos import make_corrupt_jpeg, make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import job_rows, library_hashes, output_files

pytestmark = pytest.mark.e2e

WORKERS = ("worker", "laptop", "desktop", "archive")
BIG_SIZE = (6000, 4000)
"""A 24 MP photo: bgremove takes seconds on it, long enough to kill or stop a worker mid-job."""
SYNC_S = 60.0
JOB_S = 120.0


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fetched_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def jobs_server(tmp_path_factory: pytest.TempPathFactory, pki: TestPki
                ) -> Iterator[ServerHandle]:
    """One server for the module (each test makes its own jobs and stops its own workers):
    short leases, /metrics on a port, every worker identity with the sync and work scopes."""
    http_port = free_port()
    agents: dict[str, Any] = {"admin": {"scopes": ["admin"]}}
    agents.update({w: {"scopes": ["sync", "work"]} for w in WORKERS})
    handle = start_server(tmp_path_factory.mktemp("jobs-server"), pki, extra={
        "server": {"web_ui_port": http_port},
        "jobs": {"heartbeat": "1s", "lease": "3s", "cancel_grace": "5s"},
        "agents": agents})
    handle.http_port = http_port
    yield handle
    if handle.daemon.running:
        try:
            handle.daemon.terminate(10)
        except AssertionError:
            handle.daemon.kill()


@pytest.fixture(scope="module")
def admin_config(tmp_path_factory: pytest.TempPathFactory, pki: TestPki,
                 jobs_server: ServerHandle) -> list[str]:
    """`--config` of an agent.yaml holding the admin certificate, for `photonic jobs`."""
    admin = make_agent(tmp_path_factory.mktemp("admin"), pki, "admin", jobs_server)
    return ["--config", str(admin.config_path)]


@pytest.fixture
def admin(jobs_server: ServerHandle) -> Iterator[Admin]:
    handle = Admin(jobs_server)
    yield handle
    handle.close()


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The astronaut scaled up to 6000 x 4000 (a person, 24 MP)."""
    small = astronaut_jpeg(tmp_path_factory.mktemp("big") / "small.jpg")
    path = small.with_name("big.jpg")
    with Image.open(small) as image:
        image.resize(BIG_SIZE).save(path, "JPEG", quality=85)
    return path


# --- helpers -------------------------------------------------------------------------------


def _worker(root: Path, pki: TestPki, agent_id: str, server: ServerHandle, models: Path,
            watch: str, *, executors: tuple[str, ...] | None = None,
            work: dict[str, Any] | None = None) -> AgentHandle:
    """A worker agent (not started): scopes sync and work, one watch folder named watch."""
    section: dict[str, Any] = {"enabled": True, "models_dir": str(models), **(work or {})}
    if executors is not None:
        section["executors"] = list(executors)
    return make_agent(root / agent_id, pki, agent_id, server,
                      {watch: root / agent_id / watch}, extra={"work": section})


def _start(agent: AgentHandle, daemons: list[Daemon]) -> AgentHandle:
    daemons.append(agent.daemon)
    return agent.start()


def _fetched_bytes(server: ServerHandle) -> int:
    return int(metric_total(server, "photonic_jobs_fetch_blob_bytes_total"))


def _wait_workers(server: ServerHandle, count: int, *agents: AgentHandle) -> None:
    """Until exactly `count` Work streams are open on the server."""
    logs = "\n".join(a.daemon.log()[-1500:] for a in agents)
    wait_until(lambda: metric_total(server, "photonic_jobs_workers_connected") == count, 90,
               0.1, f"{count} worker(s) connected; agent logs:\n{logs}")


def _wait_synced(server: ServerHandle, agent: AgentHandle, watch: str, count: int) -> None:
    def synced() -> bool:
        return len(library_hashes(server, agent.agent_id, watch)) >= count

    wait_until(synced, SYNC_S, 0.1,
               f"{count} file(s) of {agent.agent_id} synced; log:\n{agent.daemon.log()[-2000:]}")


def _jobs_cli(*args: str) -> tuple[int, str, str]:
    proc = run_cli("jobs", *args, timeout_s=JOB_S + 60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def _executor_children(agent: AgentHandle) -> list[int]:
    """Process ids of the agent's executor children (read from /proc: parent and command)."""
    assert agent.daemon.proc is not None
    parent = agent.daemon.proc.pid
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"photonic.agent.executors.child" in cmdline:
            found.append(int(proc.name))
    return found


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie awaiting its parent)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _failures(server: ServerHandle, job_id: str) -> int:
    return int(job_rows(server, "SELECT failures FROM jobs WHERE job_id = ?", (job_id,))[0][0])


def _recipe(output: dict[str, Any]) -> dict[str, Any]:
    recipe: dict[str, Any] = json.loads(output["recipeJson"])
    return recipe


def _recipe_crops(recipe: Any) -> list[dict[str, Any]]:
    crops: list[dict[str, Any]] = recipe["details"]["crops"]
    return crops


# --- tests ---------------------------------------------------------------------------------


def test_bgremove_and_facecrop_of_the_astronaut_through_the_cli(
        tmp_path: Path, pki: TestPki, jobs_server: ServerHandle, models: Path,
        admin_config: list[str], daemons: list[Daemon]) -> None:
    """A worker agent syncs the astronaut; `jobs submit --path ... --wait --json` of bgremove and
    facecrop both complete. The cut-out is an RGBA PNG of the input's size, the astronaut opaque
    and the wall transparent; the face crop's recipe records the face box and the crop holds it;
    both are in library/_derived/<kind>/<input path>.<ext> and `jobs download` writes them; every
    output's recipe names executor, version, model (its real SHA-256), params, worker, time."""
    worker = _start(_worker(tmp_path, pki, "worker", jobs_server, models, "t1"), daemons)
    photo = astronaut_jpeg(worker.watches["t1"] / "astronaut.jpg")
    _wait_synced(jobs_server, worker, "t1", 1)
    _wait_workers(jobs_server, 1, worker)
    done: dict[str, dict[str, Any]] = {}
    for kind in ("bgremove", "facecrop"):
        code, out, err = _jobs_cli("submit", kind, "--path", "worker/t1/astronaut.jpg",
                                   "--wait", "--json", *admin_config)
        assert code == 0, f"{err}\nagent log:\n{worker.daemon.log()[-3000:]}"
        done[kind] = json.loads(out)
        assert done[kind]["state"] == "JOB_STATE_COMPLETED" and done[kind]["workerId"] == "worker"
    for kind, ext in (("bgremove", "png"), ("facecrop", "jpg")):
        [output] = done[kind]["outputs"]
        assert output["libraryPath"] == f"_derived/{kind}/worker/t1/astronaut.jpg.{ext}"
        shown = output_files(jobs_server, f"_derived/{kind}")
        assert shown == {output["libraryPath"]: output["sha256"]}
        recipe = _recipe(output)
        assert recipe["executor"] == kind and recipe["executor_version"]
        assert recipe["model_sha256"] == sha256_of(models / recipe["model"])
        assert recipe["params"] == {} and recipe["worker"] == "worker"
        assert int(recipe["duration_ms"]) > 0
    out_dir = tmp_path / "downloads"
    for kind in done:
        code, _, err = _jobs_cli("download", done[kind]["jobId"], "-o", str(out_dir),
                                 *admin_config)
        assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["astronaut.jpg", "astronaut.png"]
    with Image.open(out_dir / "astronaut.png") as cutout, Image.open(photo) as source:
        assert cutout.format == "PNG" and cutout.mode == "RGBA"
        assert cutout.size == source.size
        alpha = np.asarray(cutout)[:, :, 3]
    for y, x in ((130, 225), (100, 200), (300, 150), (400, 230)):  # face, hair, suit
        assert alpha[y, x] == 255, (y, x)
    assert alpha[0:60, 440:512].max() == 0  # the wall, top right
    details = _recipe(done["facecrop"]["outputs"][0])["details"]
    [face], [crop] = details["faces"], details["crops"]
    fx, fy, fw, fh = ASTRONAUT_FACE
    assert abs(face["x"] - fx) <= 8 and abs(face["y"] - fy) <= 8
    assert abs(face["width"] - fw) <= 12 and abs(face["height"] - fh) <= 12
    assert crop["x"] <= face["x"] and crop["y"] <= face["y"]
    assert crop["x"] + crop["size"] >= face["x"] + face["width"]
    assert crop["y"] + crop["size"] >= face["y"] + face["height"]
    with Image.open(out_dir / "astronaut.jpg") as cropped:
        assert cropped.format == "JPEG" and cropped.size == (crop["size"], crop["size"])
    assert sha256_of(out_dir / "astronaut.jpg") == done["facecrop"]["outputs"][0]["sha256"]


def test_the_holder_of_a_photo_gets_its_job_and_fetches_nothing(
        tmp_path: Path, pki: TestPki, jobs_server: ServerHandle, models: Path, admin: Admin,
        daemons: list[Daemon]) -> None:
    """Two idle workers, each holding a photo the other lacks: each photo's job goes to its
    holder, which uses its local copy (the server streams 0 bytes by FetchBlob). With the
    holder gone, the only worker left fetches that photo: exactly its size."""
    laptop = _worker(tmp_path, pki, "laptop", jobs_server, models, "t2a", executors=("bgremove",))
    desktop = _worker(tmp_path, pki, "desktop", jobs_server, models, "t2b",
                      executors=("bgremove",))
    mine = make_jpeg(laptop.watches["t2a"] / "mine.jpg", seed=2001, width=320, height=240)
    theirs = make_jpeg(desktop.watches["t2b"] / "theirs.jpg", seed=2002, width=320, height=240)
    for agent in (laptop, desktop):
        _start(agent, daemons)
    _wait_synced(jobs_server, laptop, "t2a", 1)
    _wait_synced(jobs_server, desktop, "t2b", 1)
    _wait_workers(jobs_server, 2, laptop, desktop)
    before = _fetched_bytes(jobs_server)
    for path, holder in (("laptop/t2a/mine.jpg", "laptop"), ("desktop/t2b/theirs.jpg", "desktop")):
        job = admin.submit("bgremove", library_paths=(path,))
        job = admin.wait_state(job.job_id, "COMPLETED", "FAILED", timeout_s=JOB_S)
        assert (job.state.value, job.worker_id) == ("COMPLETED", holder), job.error
    assert _fetched_bytes(jobs_server) == before
    desktop.daemon.terminate()
    _wait_workers(jobs_server, 1, laptop)
    job = admin.submit("bgremove", library_paths=("desktop/t2b/theirs.jpg",))
    job = admin.wait_state(job.job_id, "COMPLETED", "FAILED", timeout_s=JOB_S)
    assert (job.state.value, job.worker_id) == ("COMPLETED", "laptop"), job.error
    assert _fetched_bytes(jobs_server) - before == theirs.stat().st_size
    assert mine.is_file()  # still the laptop's own: nothing of it was fetched


def test_worker_killed_mid_job_the_lease_expires_and_another_worker_completes_it(
        tmp_path: Path, pki: TestPki, jobs_server: ServerHandle, models: Path, admin: Admin,
        big_photo: Path, daemons: list[Daemon]) -> None:
    """SIGKILL of the worker running a job: with no word from it, the 3 s lease expires and the
    job is PENDING again; a second worker then completes it as attempt 2, with one set of
    outputs. The dead agent's executor child does not outlive it."""
    laptop = _worker(tmp_path, pki, "laptop", jobs_server, models, "t3", executors=("bgremove",))
    shutil.copyfile(big_photo, laptop.watches["t3"] / "big.jpg")
    _start(laptop, daemons)
    _wait_synced(jobs_server, laptop, "t3", 1)
    _wait_workers(jobs_server, 1, laptop)
    job = admin.submit("bgremove", library_paths=("laptop/t3/big.jpg",))
    running = admin.wait_state(job.job_id, "READING", "PROCESSING", timeout_s=JOB_S)
    assert running.worker_id == "laptop" and running.attempts == 1
    children = _executor_children(laptop)
    laptop.daemon.kill()
    pending = admin.wait_state(job.job_id, "PENDING", timeout_s=15)
    assert pending.worker_id == "" and pending.attempts == 1
    wait_until(lambda: not any(_alive(pid) for pid in children), 15,
               message=f"the killed agent's executor children {children} to exit")
    desktop = _start(_worker(tmp_path, pki, "desktop", jobs_server, models, "t3b",
                             executors=("bgremove",)), daemons)
    done = admin.wait_state(job.job_id, "COMPLETED", "FAILED", timeout_s=JOB_S)
    assert done.state.value == "COMPLETED", f"{done.error}\n{desktop.daemon.log()[-3000:]}"
    assert (done.worker_id, done.attempts) == ("desktop", 2)
    assert [o.name for o in done.outputs] == ["big.png"]
    assert list(output_files(jobs_server, "_derived/bgremove/laptop/t3")) == [
        "_derived/bgremove/laptop/t3/big.jpg.png"]


def test_cancel_of_a_running_job_kills_its_executor_child(
        tmp_path: Path, pki: TestPki, jobs_server: ServerHandle, models: Path,
        admin_config: list[str], admin: Admin, big_photo: Path,
        daemons: list[Daemon]) -> None:
    """`jobs cancel` of a PROCESSING job: the executor child running it (a child process of the
    agent) is gone within the grace, the job is CANCELLED, and the worker takes the next job."""
    archive = _worker(tmp_path, pki, "archive", jobs_server, models, "t4",
                      executors=("bgremove",))
    shutil.copyfile(big_photo, archive.watches["t4"] / "big.jpg")
    make_jpeg(archive.watches["t4"] / "next.jpg", seed=4001, width=320, height=240)
    _start(archive, daemons)
    _wait_synced(jobs_server, archive, "t4", 2)
    _wait_workers(jobs_server, 1, archive)
    job = admin.submit("bgremove", library_paths=("archive/t4/big.jpg",))
    admin.wait_state(job.job_id, "PROCESSING", timeout_s=JOB_S)
    children = wait_until(lambda: _executor_children(archive), 10,
                          message="the agent's executor child")
    code, _, err = _jobs_cli("cancel", job.job_id, "--json", *admin_config)
    assert code == 0, err
    assert admin.wait_state(job.job_id, "CANCELLED", timeout_s=15).outputs == ()
    wait_until(lambda: [pid for pid in children if not _alive(pid)], 15,
               message=f"the executor child running the job (one of {children}) to exit")
    assert len([pid for pid in children if not _alive(pid)]) == 1  # only the job's child
    after = admin.submit("bgremove", library_paths=("archive/t4/next.jpg",))
    assert admin.wait_state(after.job_id, "COMPLETED", "FAILED",
                            timeout_s=JOB_S).state.value == "COMPLETED"
    assert archive.daemon.running


def test_batch_with_two_corrupt_photos_ends_18_completed_and_2_failed(
        tmp_path: Path, pki: TestPki, jobs_server: ServerHandle, models: Path,
        admin_config: list[str], admin: Admin, daemons: list[Daemon]) -> None:
    """A folder of 20 photos, 2 of them not decodable (text named .jpg, and a JFIF header over
    garbage): `submit --folder --wait` exits 1; 18 children COMPLETED, 2 FAILED with the
    decoder's message (no retry); the parent FAILED "2 of 20 failed"; `jobs download` of the
    batch writes the 18 cut-outs named after their inputs."""
    worker = _worker(tmp_path, pki, "worker", jobs_server, models, "t5", executors=("bgremove",))
    folder = worker.watches["t5"] / "batch"
    for i in range(18):
        make_jpeg(folder / f"IMG_{i:04d}.jpg", seed=5000 + i, width=160, height=120)
    (folder / "notes.jpg").write_bytes(b"this is a text file, not a photo\n" * 40)
    make_corrupt_jpeg(folder / "garbled.jpg", seed=5100)
    _start(worker, daemons)
    _wait_synced(jobs_server, worker, "t5", 20)
    _wait_workers(jobs_server, 1, worker)
    code, out, err = _jobs_cli("submit", "bgremove", "--folder", "worker/t5/batch", "--wait",
                               "--json", *admin_config)
    parent = json.loads(out)
    assert code == 1, err
    assert parent["state"] == "JOB_STATE_FAILED" and parent["error"] == "2 of 20 failed"
    assert parent["batch"]["total"] == 20 and parent["batch"]["completed"] == 18
    children = admin.children(parent["jobId"])
    failed = {c.input_path.rsplit("/", 1)[1]: c for c in children if c.state.value == "FAILED"}
    assert sorted(failed) == ["garbled.jpg", "notes.jpg"]
    for child in failed.values():
        assert child.error.startswith("cannot decode image: "), child.error
        assert child.attempts == 1  # the input's fault: not retried
    assert sum(c.state.value == "COMPLETED" for c in children) == 18
    out_dir = tmp_path / "batch-out"
    code, out, err = _jobs_cli("download", parent["jobId"], "-o", str(out_dir), *admin_config)
    assert code == 0, err
    assert "2 of 20 jobs have no outputs (2 FAILED)" in err
    assert sorted(p.name for p in out_dir.iterdir()) == [f"IMG_{i:04d}.png" for i in range(18)]


def test_sigterm_of_a_busy_worker_hands_its_job_back(
        tmp_path: Path, pki: TestPki, jobs_server: ServerHandle, models: Path, admin: Admin,
        big_photo: Path, daemons: list[Daemon]) -> None:
    """SIGTERM while a job runs (grace 0.5 s): the agent exits cleanly having finished the job
    or handed it back (Released: PENDING at once, no failure counted); it never leaves the job
    leased. A second worker completes it."""
    worker = _worker(tmp_path, pki, "worker", jobs_server, models, "t6",
                     executors=("bgremove",), work={"grace": "500ms"})
    shutil.copyfile(big_photo, worker.watches["t6"] / "big.jpg")
    _start(worker, daemons)
    _wait_synced(jobs_server, worker, "t6", 1)
    _wait_workers(jobs_server, 1, worker)
    job = admin.submit("bgremove", library_paths=("worker/t6/big.jpg",))
    admin.wait_state(job.job_id, "PROCESSING", timeout_s=JOB_S)
    assert worker.daemon.proc is not None
    worker.daemon.proc.send_signal(signal.SIGTERM)
    assert worker.daemon.proc.wait(30) == 0, worker.daemon.log()[-3000:]
    after = admin.get(job.job_id)
    assert after.state.value in ("PENDING", "COMPLETED"), after
    assert _failures(jobs_server, job.job_id) == 0 and after.error == ""
    if after.state.value == "PENDING":
        assert after.progress_message.startswith("handed back"), after.progress_message
        desktop = _start(_worker(tmp_path, pki, "desktop", jobs_server, models, "t6b",
                                 executors=("bgremove",)), daemons)
        done = admin.wait_state(job.job_id, "COMPLETED", "FAILED", timeout_s=JOB_S)
        assert done.state.value == "COMPLETED", f"{done.error}\n{desktop.daemon.log()[-3000:]}"
        assert (done.worker_id, done.attempts, len(done.outputs)) == ("desktop", 2, 1)


def test_zip_of_three_portraits_is_a_completed_facecrop_batch(
        tmp_path: Path, pki: TestPki, jobs_server: ServerHandle, models: Path,
        admin_config: list[str], admin: Admin, daemons: list[Daemon]) -> None:
    """`jobs submit facecrop --zip portraits.zip --wait` with three astronaut photos (as shot,
    mirrored, smaller): a batch of three, all COMPLETED by a worker that fetched the inputs,
    each with one square face crop."""
    photo = astronaut_jpeg(tmp_path / "astronaut.jpg")
    archive = tmp_path / "portraits.zip"
    with Image.open(photo) as image, zipfile.ZipFile(archive, "w") as zf:
        zf.write(photo, "portraits/astronaut.jpg")
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "mirrored.jpg")
        image.resize((384, 384)).save(tmp_path / "smaller.jpg")
        zf.write(tmp_path / "mirrored.jpg", "portraits/mirrored.jpg")
        zf.write(tmp_path / "smaller.jpg", "portraits/smaller.jpg")
    worker = _start(_worker(tmp_path, pki, "worker", jobs_server, models, "t7",
                            executors=("facecrop",)), daemons)
    _wait_workers(jobs_server, 1, worker)
    code, out, err = _jobs_cli("submit", "facecrop", "--zip", str(archive), "--wait", "--json",
                               *admin_config)
    assert code == 0, f"{err}\n{worker.daemon.log()[-3000:]}"
    parent = json.loads(out)
    assert parent["state"] == "JOB_STATE_COMPLETED" and parent["batch"]["completed"] == 3
    children = admin.children(parent["jobId"])
    assert sorted(o.name for c in children for o in c.outputs) == [
        "astronaut.jpg", "mirrored.jpg", "smaller.jpg"]
    for child in children:
        [crop] = _recipe_crops(child.outputs[0].recipe)
        assert crop["size"] > 0
