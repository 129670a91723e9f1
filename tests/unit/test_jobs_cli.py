"""`photonic jobs`: argument and parameter parsing, rendering, download naming, and the client
and commands against a scripted PhotonicJobs server over real mutual TLS."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from rich.console import Console

from photonic import cli, jobs_cli, jobs_view
from photonic.errors import IntegrityError
from photonic.jobs_client import JobsClient, job_to_dict, to_json
from photonic.jobs_model import BatchCounts, Job, JobId, JobOutput, JobRequest, JobState
from photonic.jobs_wire import job_to_wire
from photonic.tls import channel_credentials, server_credentials
from photonic.v1 import jobs_pb2, jobs_pb2_grpc
from tests.support.pki import TestPki

SHA = "ab" * 32


def _parse(*argv: str) -> Any:
    return cli._parser().parse_args(["jobs", *argv])


def _job(job_id: str = "j1", state: JobState = JobState.PENDING, **kw: Any) -> Job:
    return Job(JobId(job_id), kw.pop("kind", "bgremove"), state, **kw)


# Parsing ------------------------------------------------------------------------------------


def test_param_values_are_json_when_they_parse_else_strings() -> None:
    assert jobs_cli.parse_params(["t=0.5", "n=3", "on=true", "which=all", "eq=a=b",
                                  "obj={\"x\": 1}", "empty="]) == {
        "t": 0.5, "n": 3, "on": True, "which": "all", "eq": "a=b", "obj": {"x": 1},
        "empty": ""}


@pytest.mark.parametrize("bad", ["novalue", "=3"])
def test_a_param_without_key_or_equals_is_a_usage_error(bad: str) -> None:
    with pytest.raises(jobs_cli.UsageError, match="KEY=VALUE"):
        jobs_cli.parse_params([bad])


def test_submit_arguments_become_one_job_request() -> None:
    args = _parse("submit", "facecrop", "--photo", SHA.upper(), "--photo", "cd" * 32,
                  "--param", "size=512", "--require", "gpu", "--priority", "5", "--wait")
    assert jobs_cli.build_request(args) == JobRequest(
        kind="facecrop", input_sha256=(SHA, "cd" * 32), params={"size": 512},
        requires=("gpu",), priority=5)
    assert args.wait and not args.json
    folder = jobs_cli.build_request(_parse("submit", "bgremove", "--folder", "laptop/p/2024"))
    assert folder.library_folder == "laptop/p/2024" and folder.input_sha256 == ()


@pytest.mark.parametrize("argv", [
    ["submit", "bgremove"],  # no input
    ["submit", "bgremove", "--photo", SHA, "--zip", "a.zip"],  # two inputs
    ["list", "--state", "sleeping"],
    ["status"],
])
def test_bad_command_lines_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parse(*argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_states_are_accepted_in_any_spelling() -> None:
    assert _parse("list", "--state", "failed").state is JobState.FAILED
    assert _parse("list", "--state", "JOB_STATE_COMPLETED").state is JobState.COMPLETED


def test_server_without_its_certificate_is_a_usage_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    """--server needs --cert/--key/--ca: one sentence on stderr, exit 2, no traceback."""
    assert cli.main(["jobs", "list", "--server", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("photonic: --server needs --cert") and "Traceback" not in err


# Rendering ----------------------------------------------------------------------------------


def test_json_is_the_canonical_mapping_with_every_field_in_proto_order() -> None:
    """camelCase names, the enum's name, int64 as a string, defaults present, so scripts can
    rely on the keys; a list for several jobs."""
    data = job_to_dict(_job(input_sha256=(SHA,), created_unix_ms=1700000000000))
    assert list(data)[:4] == ["jobId", "kind", "state", "inputSha256"]
    assert data["state"] == "JOB_STATE_PENDING" and data["createdUnixMs"] == "1700000000000"
    assert data["progress"] == 0 and data["error"] == "" and "batch" not in data
    assert {f.json_name for f in jobs_pb2.Job.DESCRIPTOR.fields} - {"batch"} <= set(data)
    assert [j["jobId"] for j in json.loads(to_json([_job("a"), _job("b")]))] == ["a", "b"]


def _render(renderable: Any) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_a_batch_shows_its_counts_and_a_table_of_children() -> None:
    parent = _job("b1", JobState.PROCESSING, kind="batch", batch_kind="bgremove",
                  batch=BatchCounts(total=3, pending=1, running=0, completed=1, failed=1))
    children = [_job("c1", JobState.COMPLETED, outputs=(JobOutput(SHA, "a.png", 2048),),
                     input_path="laptop/p/a.jpg"),
                _job("c2", JobState.FAILED, error="no subject found"), _job("c3")]
    text = _render(jobs_view.job_details(parent, children))
    assert "batch of bgremove" in text and "3 total, 1 completed, 1 failed" in text
    for needle in ("c1", "laptop/p/a.jpg", "a.png", "c2", "no subject found", "c3"):
        assert needle in text
    assert "1/3 completed, 1 failed" in jobs_view.summary(parent)


def test_a_job_shows_its_tries_with_hand_backs_said_apart() -> None:
    """Attempt numbers 1-3 were leases handed back unrun; the fourth runs: try 1 of 3, not
    "attempt 4 of 3". The count survives the wire (JSON and protobuf)."""
    job = _job("j1", JobState.PROCESSING, attempts=4, handbacks=3, max_attempts=3)
    assert "1 of 3 (3 handed back unrun)" in _render(jobs_view.job_details(job, []))
    assert "1 of 3" in _render(jobs_view.job_details(_job("j2", attempts=1), []))
    assert json.loads(to_json(job))["handbacks"] == 3


def test_outcome_fails_a_batch_with_any_failed_child() -> None:
    good = _job("b", JobState.COMPLETED, kind="batch", batch=BatchCounts(2, completed=2))
    bad = _job("b", JobState.COMPLETED, kind="batch", batch=BatchCounts(2, completed=1,
                                                                         failed=1))
    assert jobs_view.outcome(good) == (True, "batch b COMPLETED: 2 of 2 jobs")
    assert jobs_view.outcome(bad) == (False, "batch b COMPLETED: 1 failed of 2 jobs")
    assert jobs_view.outcome(_job("j", JobState.FAILED, error="boom")) == (
        False, "job j FAILED: boom")


def test_progress_board_draws_bars_for_jobs_and_batches() -> None:
    console = Console(file=io.StringIO(), width=160, color_system=None, force_terminal=False)
    with jobs_view.ProgressBoard(console) as board:
        board.show([_job("j1", JobState.PROCESSING, progress=0.5, progress_message="masking")])
        board.show([_job("b1", JobState.PROCESSING, kind="batch",
                         batch=BatchCounts(4, completed=2, running=2))])
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "j1" in text and "masking" in text and "2 done" in text


def test_download_names_follow_the_input_and_collisions_get_the_job_id() -> None:
    """Each file is named as the worker named it; names two jobs share get the job id, and
    a name that is a path (or hidden) is reduced to a plain file name (or the hash)."""
    a = _job("c1", outputs=(JobOutput("1" * 64, "a.png", 1),))
    b = _job("c2", outputs=(JobOutput("2" * 64, "a.png", 1), JobOutput("3" * 64, "b.png", 1)))
    c = _job("c3", outputs=(JobOutput("4" * 64, "../../x.png", 1),
                            JobOutput("5" * 64, ".hidden", 1), JobOutput("6" * 64, "f.png", 1),
                            JobOutput("7" * 64, "f.png", 1)))
    names = [name for _, _, name in jobs_cli.download_plan([a, b, c])]
    assert names == ["a.c1.png", "a.c2.png", "b.png", "x.png", "5" * 16,
                     f"f.c3-{'6' * 8}.png", f"f.c3-{'7' * 8}.png"]


# Against a scripted server ------------------------------------------------------------------


@dataclass
class Script:
    """What the fake server answers and what it was sent."""

    jobs: dict[str, list[jobs_pb2.Job]] = field(default_factory=dict)  # GetJob answers in turn
    children: dict[str, list[jobs_pb2.Job]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    break_first_fetch_after: int = 0
    fetch_offsets: list[int] = field(default_factory=list)
    zip_chunks: list[jobs_pb2.ZipChunk] = field(default_factory=list)
    submitted: list[jobs_pb2.SubmitJobRequest] = field(default_factory=list)


class FakeJobs(jobs_pb2_grpc.PhotonicJobsServicer):  # type: ignore[misc]
    def __init__(self, script: Script) -> None:
        self.s = script

    def SubmitJob(self, request: Any, context: Any) -> jobs_pb2.Job:
        self.s.submitted.append(request)
        if request.kind not in ("bgremove", "facecrop"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"unknown job type {request.kind!r} (known: bgremove, facecrop)")
        return jobs_pb2.Job(job_id="j1", kind=request.kind, state=jobs_pb2.JOB_STATE_PENDING,
                            input_sha256=request.input_sha256)

    def SubmitZip(self, request_iterator: Any, context: Any) -> jobs_pb2.Job:
        self.s.zip_chunks.extend(request_iterator)
        return jobs_pb2.Job(job_id="b1", kind="batch", state=jobs_pb2.JOB_STATE_PENDING)

    def GetJob(self, request: Any, context: Any) -> jobs_pb2.Job:
        answers = self.s.jobs.get(request.job_id)
        if not answers:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no job {request.job_id}")
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def ListJobs(self, request: Any, context: Any) -> jobs_pb2.ListJobsResponse:
        return jobs_pb2.ListJobsResponse(jobs=self.s.children.get(request.parent_id, []))

    def FetchBlob(self, request: Any, context: Any) -> Iterator[jobs_pb2.BlobChunk]:
        self.s.fetch_offsets.append(request.offset)
        data = self.s.blobs[request.sha256]
        for at in range(request.offset, len(data), 1000):
            if self.s.break_first_fetch_after and at >= self.s.break_first_fetch_after:
                self.s.break_first_fetch_after = 0
                context.abort(grpc.StatusCode.UNAVAILABLE, "connection lost")
            yield jobs_pb2.BlobChunk(offset=at, data=data[at:at + 1000], total_size=len(data))


@pytest.fixture
def scripted(pki: TestPki) -> Iterator[tuple[Script, list[str]]]:
    """A fake PhotonicJobs on 127.0.0.1 over mTLS, and the CLI flags that reach it as admin."""
    script = Script()
    server = grpc.server(ThreadPoolExecutor(4))
    jobs_pb2_grpc.add_PhotonicJobsServicer_to_server(FakeJobs(script), server)
    port = server.add_secure_port(
        "127.0.0.1:0", server_credentials(pki.server_cert, pki.server_key, pki.ca))
    server.start()
    flags = ["--server", f"127.0.0.1:{port}", "--cert", str(pki.agent_cert("admin")),
             "--key", str(pki.agent_key("admin")), "--ca", str(pki.ca)]
    yield script, flags
    server.stop(None)


def _client(flags: list[str], pki: TestPki) -> JobsClient:
    return JobsClient(flags[1], channel_credentials(pki.agent_cert("admin"),
                                                    pki.agent_key("admin"), pki.ca))


def test_fetch_blob_resumes_a_broken_stream_and_verifies(
        scripted: tuple[Script, list[str]], pki: TestPki, tmp_path: Path) -> None:
    """The stream breaks after 3,000 bytes: the retry asks from offset 3,000, the whole
    hashes to its name, and only then does dest exist (no .part left)."""
    script, flags = scripted
    blob = bytes(range(256)) * 30
    sha = hashlib.sha256(blob).hexdigest()
    script.blobs[sha] = blob
    script.break_first_fetch_after = 3000

    async def run() -> int:
        client = _client(flags, pki)
        try:
            return await client.fetch_blob(sha, tmp_path / "out.png")
        finally:
            await client.close()

    assert asyncio.run(run()) == len(blob)
    assert script.fetch_offsets == [0, 3000]
    assert (tmp_path / "out.png").read_bytes() == blob
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_fetch_blob_refuses_bytes_that_do_not_hash(
        scripted: tuple[Script, list[str]], pki: TestPki, tmp_path: Path) -> None:
    script, flags = scripted
    script.blobs[SHA] = b"not what the hash says"

    async def run() -> None:
        client = _client(flags, pki)
        try:
            await client.fetch_blob(SHA, tmp_path / "out.png")
        finally:
            await client.close()

    with pytest.raises(IntegrityError, match="hashed to"):
        asyncio.run(run())
    assert list(tmp_path.iterdir()) == []


def test_submit_zip_sends_the_submit_first_then_1_mib_chunks(
        scripted: tuple[Script, list[str]], pki: TestPki, tmp_path: Path) -> None:
    script, flags = scripted
    archive = tmp_path / "shoot.zip"
    archive.write_bytes(bytes(5 << 19))  # 2.5 MiB

    async def run() -> Job:
        client = _client(flags, pki)
        try:
            return await client.submit_zip(archive, JobRequest("bgremove", params={"t": 1}))
        finally:
            await client.close()

    assert asyncio.run(run()).job_id == "b1"
    first, *rest = script.zip_chunks
    assert first.submit.kind == "bgremove" and first.file_name == "shoot.zip" and not first.data
    assert json.loads(first.submit.params_json) == {"t": 1}
    assert [len(c.data) for c in rest] == [1 << 20, 1 << 20, 1 << 19]
    assert not any(c.HasField("submit") for c in rest)


def test_server_errors_are_one_sentence_and_exit_1(
        scripted: tuple[Script, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    """INVALID_ARGUMENT and NOT_FOUND reach the person as the server's sentence, no trace."""
    _, flags = scripted
    assert cli.main(["jobs", "submit", "sharpen", "--photo", SHA, *flags]) == 1
    err = capsys.readouterr().err
    assert err == "photonic: unknown job type 'sharpen' (known: bgremove, facecrop)\n"
    assert cli.main(["jobs", "status", "nope", *flags]) == 1
    assert capsys.readouterr().err == "photonic: no job nope\n"


def test_submit_json_prints_the_job(scripted: tuple[Script, list[str]],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    script, flags = scripted
    assert cli.main(["jobs", "submit", "bgremove", "--photo", SHA, "--param", "threshold=0.4",
                     "--json", *flags]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["jobId"] == "j1" and out["state"] == "JOB_STATE_PENDING"
    assert json.loads(script.submitted[0].params_json) == {"threshold": 0.4}


def _wire(job: Job) -> jobs_pb2.Job:
    return job_to_wire(job)


def test_wait_follows_a_batch_and_exits_1_naming_its_failures(
        scripted: tuple[Script, list[str]], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    script, flags = scripted
    monkeypatch.setattr(jobs_cli, "POLL_INTERVAL_S", 0.01)
    batch = dict(kind="batch", batch_kind="bgremove")
    script.jobs["b1"] = [
        _wire(_job("b1", JobState.PENDING, batch=BatchCounts(2, pending=2), **batch)),
        _wire(_job("b1", JobState.PROCESSING, batch=BatchCounts(2, running=1, completed=1),
                   **batch)),
        _wire(_job("b1", JobState.COMPLETED, batch=BatchCounts(2, completed=1, failed=1),
                   **batch))]
    assert cli.main(["jobs", "watch", "b1", *flags]) == 1
    assert "photonic: batch b1 COMPLETED: 1 failed of 2 jobs" in capsys.readouterr().err
    script.jobs["j1"] = [_wire(_job("j1", JobState.PROCESSING, progress=0.3)),
                         _wire(_job("j1", JobState.COMPLETED))]
    assert cli.main(["jobs", "submit", "bgremove", "--photo", SHA, "--wait", *flags]) == 0
    assert "job j1 COMPLETED" in capsys.readouterr().out


def test_download_of_a_batch_writes_every_childs_outputs(
        scripted: tuple[Script, list[str]], capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    script, flags = scripted
    blobs = {hashlib.sha256(b).hexdigest(): b for b in (b"first" * 500, b"second" * 500)}
    script.blobs.update(blobs)
    (s1, s2) = blobs
    script.jobs["b1"] = [_wire(_job("b1", JobState.COMPLETED, kind="batch",
                                    batch=BatchCounts(3, completed=2, failed=1)))]
    script.children["b1"] = [
        _wire(_job("c1", JobState.COMPLETED, outputs=(JobOutput(s1, "IMG_1.png", 2500),))),
        _wire(_job("c2", JobState.COMPLETED, outputs=(JobOutput(s2, "IMG_1.png", 3000),))),
        _wire(_job("c3", JobState.FAILED, error="no face"))]
    out_dir = tmp_path / "results"
    assert cli.main(["jobs", "download", "b1", "-o", str(out_dir), *flags]) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in out_dir.iterdir()) == ["IMG_1.c1.png", "IMG_1.c2.png"]
    assert (out_dir / "IMG_1.c2.png").read_bytes() == blobs[s2]
    assert f"wrote {out_dir / 'IMG_1.c1.png'}" in captured.out
    assert "1 of 3 jobs have no outputs (1 FAILED)" in captured.err
