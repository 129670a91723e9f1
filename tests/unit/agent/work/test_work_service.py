"""The work service against fake servers over real mutual TLS and a fake executor pool: how a
job's input is obtained, how attempts end (done, failed, cancelled, refused, released), how
slots are shared between servers, and how a stop drains."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from photonic.agent.backoff import Backoff
from photonic.agent.executors.base import ExecutorError, ExecutorInfo
from photonic.agent.work.jobs_channel import RESULT_CHUNK_BYTES, JobsChannel
from photonic.agent.work.service import WorkService, os_tag
from photonic.config import WorkConfig
from photonic.jobs_model import (
    Assignment,
    CancelOrder,
    Held,
    ReportRefused,
    WorkCancelled,
    WorkCapacity,
    WorkDone,
    WorkerHello,
    WorkFailed,
    WorkProgress,
    WorkReleased,
)
from photonic.tls import channel_credentials
from tests.support.pki import TestPki
from tests.unit.agent.work.fakes import (
    INFO,
    FakeJobsServer,
    FakePool,
    FakeStream,
    make_job,
    wait_until,
)

PHOTO = bytes(range(256)) * 1200  # 300 KiB: several blob chunks
PHOTO_SHA = hashlib.sha256(PHOTO).hexdigest()


@dataclass
class Harness:
    servers: list[FakeJobsServer]
    pool: FakePool
    service: WorkService
    stop: asyncio.Event
    task: asyncio.Task[None]
    buffer: Path

    @property
    def server(self) -> FakeJobsServer:
        return self.servers[0]


@asynccontextmanager
async def running(pki: TestPki, tmp_path: Path, *, endpoints: int = 1,
                  config: WorkConfig | None = None, pool: FakePool | None = None,
                  local: Callable[[str], Sequence[Path]] = lambda _sha: (),
                  ) -> AsyncIterator[Harness]:
    """A WorkService connected to `endpoints` fake servers, stopped at the end."""
    servers = [FakeJobsServer() for _ in range(endpoints)]
    addresses = [await s.start(pki) for s in servers]
    creds = channel_credentials(pki.agent_cert("worker"), pki.agent_key("worker"), pki.ca)
    pool = pool or FakePool()
    service = WorkService(
        agent_id="worker", rpcs=[JobsChannel(a, creds) for a in addresses], pool=pool,
        local_copies=local, config=config or WorkConfig(enabled=True, tags=("gpu",)),
        buffer_path=tmp_path / "buffer", backoff=lambda: Backoff(0.01, 0.05))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    harness = Harness(servers, pool, service, stop, task, tmp_path / "buffer")
    try:
        # Open on both sides: the worker sent its Hello and each server has read it.
        await wait_until(lambda: service.ready.is_set() and all(
            s.connected.is_set() for s in service.sessions) and all(
            srv.streams for srv in servers), message="streams open")
        yield harness
    finally:
        stop.set()
        if pool.gate is not None:
            pool.gate.set()
        await asyncio.wait({task}, timeout=20)
        assert task.done(), "the service did not stop"
        for s in servers:
            await s.stop()


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 60))


def final_reports(h: Harness, server: int = 0) -> list[object]:
    return [r for s in h.servers[server].streams for r in s.reports
            if isinstance(r, WorkDone | WorkFailed | WorkCancelled | WorkReleased)]


def test_hello_says_capabilities_executors_and_concurrency(pki: TestPki, tmp_path: Path) -> None:
    """The Hello names each executor, the extra tags and the OS, with name=version."""
    async def main() -> None:
        async with running(pki, tmp_path) as h:
            await wait_until(lambda: h.server.streams and h.server.stream.reports)
            hello = h.server.stream.hello
            assert hello.capabilities == ("bgremove", "gpu", os_tag())
            assert hello.executors == ("bgremove=1.2.3",)
            assert (hello.max_concurrent, hello.held) == (1, ())
        assert h.pool.closed and h.server.stream.ended
    run(main)


def test_a_verified_local_copy_is_used_and_nothing_is_fetched(pki: TestPki,
                                                              tmp_path: Path) -> None:
    """A local copy rewritten since it was synced is passed over; the next one that hashes
    right is the input; no byte is fetched; outputs are uploaded, then Done with recipes."""
    stale, good = tmp_path / "stale.jpg", tmp_path / "good.jpg"
    stale.write_bytes(b"edited since")
    good.write_bytes(PHOTO)

    async def main() -> None:
        async with running(pki, tmp_path, local=lambda sha: [stale, good]) as h:
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: final_reports(h), message="a final report")
            [done] = final_reports(h)
            assert isinstance(done, WorkDone) and done.attempt == 1
            assert h.server.fetches == [] and h.service.inputs.fetched_bytes == 0
            assert h.pool.inputs == [(good, PHOTO)]
            [upload] = h.server.uploads
            assert (upload.first.job_id, upload.first.attempt, upload.first.name) == (
                "j1", 1, "photo.png")
            assert upload.first.sha256 == done.outputs[0].sha256
            assert upload.first.total_size == 10 == done.outputs[0].size
            recipe = done.outputs[0].recipe
            assert (recipe["executor"], recipe["executor_version"]) == ("bgremove", "1.2.3")
            assert (recipe["model"], recipe["model_sha256"]) == (INFO.model_name,
                                                                 INFO.model_sha256)
            assert (recipe["worker"], recipe["params"]) == ("worker", {"threshold": 0.5})
            assert recipe["details"] == {"mask_fraction": 0.25}
            progress = [r for r in h.server.stream.reports if isinstance(r, WorkProgress)]
            assert [p.processing for p in progress[:2]] == [False, True]
            assert [p.finishing for p in progress] == [False, False, True]  # before the upload
            # Its slot is free once it says `finishing`; the attempt ends after the upload.
            await wait_until(lambda: not any(s.jobs for s in h.service.sessions),
                             message="the job ended")
            assert h.service.running == 0
            assert not list((h.buffer / "work" / "jobs").iterdir())
    run(main)


def test_a_local_copy_edited_while_processed_fails_the_attempt(pki: TestPki,
                                                                tmp_path: Path) -> None:
    """A photo rewritten while the executor reads it does not pass for the job's input: the
    attempt fails (retryably) instead of reporting an output of other bytes as its result."""
    good = tmp_path / "good.jpg"
    good.write_bytes(PHOTO)

    async def main() -> None:
        pool = _held_pool()
        async with running(pki, tmp_path, pool=pool, local=lambda sha: [good]) as h:
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: pool.running == 1, message="the job running")
            good.write_bytes(PHOTO + b" edited")
            assert pool.gate is not None
            pool.gate.set()
            await wait_until(lambda: final_reports(h), message="a final report")
            [failed] = final_reports(h)
            assert isinstance(failed, WorkFailed) and failed.retryable
            assert "changed while it was processed" in failed.error
            assert h.server.uploads == []
    run(main)


def test_a_cut_fetch_resumes_from_its_offset(pki: TestPki, tmp_path: Path) -> None:
    """A FetchBlob cut after two chunks resumes from there (not from 0), LZ4 chunks are
    inflated, and the executor gets exactly the server's bytes."""
    async def main() -> None:
        async with running(pki, tmp_path) as h:
            h.server.blobs[PHOTO_SHA] = PHOTO
            h.server.cut_first_fetch_after = 2 * 64 * 1024
            h.server.lz4 = True
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: final_reports(h), message="a final report")
            assert isinstance(final_reports(h)[0], WorkDone)
            assert h.server.fetches == [0, 2 * 64 * 1024]
            assert h.service.inputs.fetched_bytes == len(PHOTO)
            [(path, data)] = h.pool.inputs
            assert data == PHOTO and path == h.buffer / "work" / "inputs" / PHOTO_SHA
    run(main)


def test_a_fetched_input_reaches_the_executor_under_its_library_name(
        pki: TestPki, tmp_path: Path) -> None:
    """Executors name outputs after the file they read: a fetched input (cached under its
    hash) is handed to them as the job's input file name, so outputs are not named by hash."""
    async def main() -> None:
        async with running(pki, tmp_path) as h:
            h.server.blobs[PHOTO_SHA] = PHOTO
            job = dataclasses.replace(make_job("j1", PHOTO_SHA),
                                      input_path="laptop/photos/portrait.jpg")
            h.server.assign(job)
            await wait_until(lambda: final_reports(h), message="a final report")
            assert isinstance(final_reports(h)[0], WorkDone)
            [(path, data)] = h.pool.inputs
            assert path.name == "portrait.jpg" and data == PHOTO
    run(main)


def test_fetched_bytes_that_do_not_match_fail_the_attempt_retryably(
        pki: TestPki, tmp_path: Path) -> None:
    """Bytes that do not hash to the input are never given to an executor: the attempt
    fails (retryable: the next may get good bytes) and the partial copy is deleted."""
    async def main() -> None:
        async with running(pki, tmp_path) as h:
            h.server.blobs[PHOTO_SHA] = PHOTO[:-1] + b"X"
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: final_reports(h), message="a final report")
            [failed] = final_reports(h)
            assert isinstance(failed, WorkFailed) and failed.retryable
            assert h.pool.inputs == []
            assert not list((h.buffer / "work" / "inputs").iterdir())
    run(main)


def test_an_executor_error_is_reported_with_its_retryability(pki: TestPki,
                                                             tmp_path: Path) -> None:
    """An input the executor cannot handle fails the job for good (retryable=False)."""
    pool = FakePool()
    pool.error = ExecutorError("no face found")

    async def main() -> None:
        async with running(pki, tmp_path, pool=pool, local=lambda sha: [src]) as h:
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: final_reports(h), message="a final report")
            assert final_reports(h) == [WorkFailed("j1", 1, "no face found", False)]
    src = tmp_path / "p.jpg"
    src.write_bytes(PHOTO)
    run(main)


def test_a_job_assigned_as_the_last_one_fails_gets_its_slot(pki: TestPki,
                                                           tmp_path: Path) -> None:
    """With one slot, the server assigns the next job the moment it reads the previous one's
    Failed (as the dispatcher does): the worker runs it, instead of handing it back with
    "no free slot" because the failed attempt was still cleaning up (which cost the job an
    attempt: a corrupt photo of a batch then ended FAILED after 2 attempts, not 1)."""
    pool = FakePool()
    pool.error = ExecutorError("cannot decode image: garbage")
    src = tmp_path / "p.jpg"
    src.write_bytes(PHOTO)
    free_when_read: list[int] = []

    async def main() -> None:
        async with running(pki, tmp_path, pool=pool, local=lambda sha: [src]) as h:
            def answer(stream: FakeStream, report: object) -> None:
                if isinstance(report, WorkFailed) and report.job_id == "j1":
                    free_when_read.append(h.service.slots.free)
                    stream.orders.put_nowait(Assignment(make_job("j2", PHOTO_SHA), 0))

            h.server.on_report = answer
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: len(final_reports(h)) == 2, message="two final reports")
            assert final_reports(h) == [WorkFailed("j1", 1, "cannot decode image: garbage",
                                                   False),
                                        WorkFailed("j2", 1, "cannot decode image: garbage",
                                                   False)]
            assert free_when_read == [1]
    run(main)


def test_an_executed_job_waiting_for_an_upload_gets_its_slot_when_that_upload_ends(
        pki: TestPki, tmp_path: Path) -> None:
    """One slot: j1's outputs upload (slow), j2 runs meanwhile and is executed too, so it keeps
    its slot (one upload at a time), as the dispatcher counts it. When j1's Done leaves,
    j2's upload may start and its slot is free: the job the server assigns on reading j1's
    Done runs instead of being handed back "no free slot" (which cost a corrupt photo of a
    batch a second attempt in CI)."""
    src = tmp_path / "p.jpg"
    src.write_bytes(PHOTO)
    free_when_read: list[int] = []

    async def main() -> None:
        async with running(pki, tmp_path, local=lambda sha: [src]) as h:
            h.server.upload_gates = {"j1": asyncio.Event(), "j2": asyncio.Event()}

            def answer(stream: FakeStream, report: object) -> None:
                if isinstance(report, WorkProgress) and report.finishing \
                        and report.job_id == "j1":
                    stream.orders.put_nowait(Assignment(make_job("j2", PHOTO_SHA), 0))
                elif isinstance(report, WorkProgress) and report.finishing:
                    h.server.upload_gates["j1"].set()
                elif isinstance(report, WorkDone) and report.job_id == "j1":
                    free_when_read.append(h.service.slots.free)
                    stream.orders.put_nowait(Assignment(make_job("j3", PHOTO_SHA), 0))
                    h.server.upload_gates["j2"].set()

            h.server.on_report = answer
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: len(final_reports(h)) == 3, message="three final reports")
            assert sorted(type(r).__name__ + ":" + r.job_id  # type: ignore[attr-defined]
                          for r in final_reports(h)) == ["WorkDone:j1", "WorkDone:j2",
                                                         "WorkDone:j3"]
            assert free_when_read == [1]
    run(main)


def test_a_failed_job_still_cleaning_up_is_not_counted_as_an_upload(
        pki: TestPki, tmp_path: Path) -> None:
    """One slot: j1 fails and its cleanup is slow; j2, assigned on reading j1's Failed, is
    executed before j1 has ended. j1 uploads nothing, so j2's slot is free as its outputs
    upload, as the dispatcher counts it, and the next job runs."""
    src = tmp_path / "p.jpg"
    src.write_bytes(PHOTO)
    pool = FakePool()
    cleanup = asyncio.Event()
    free_when_finishing: list[int] = []

    async def main() -> None:
        async with running(pki, tmp_path, pool=pool, local=lambda sha: [src]) as h:
            prune = h.service.inputs.prune
            pruned = 0

            async def slow_first_prune() -> None:
                nonlocal pruned
                pruned += 1
                if pruned == 1:
                    await cleanup.wait()
                await prune()

            h.service.inputs.prune = slow_first_prune  # type: ignore[method-assign]

            def answer(stream: FakeStream, report: object) -> None:
                if isinstance(report, WorkFailed) and report.job_id == "j1":
                    pool.error = None
                    stream.orders.put_nowait(Assignment(make_job("j2", PHOTO_SHA), 0))
                elif isinstance(report, WorkProgress) and report.finishing:
                    free_when_finishing.append(h.service.slots.free)
                    cleanup.set()

            h.server.on_report = answer
            pool.error = ExecutorError("cannot decode image: garbage")
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: len(final_reports(h)) == 2, message="two final reports")
            assert free_when_finishing == [1]
    run(main)


def _held_pool() -> FakePool:
    pool = FakePool()
    pool.gate = asyncio.Event()
    return pool


def test_a_cancel_stops_the_job_and_reports_cancelled(pki: TestPki, tmp_path: Path) -> None:
    """A CancelOrder cancels the running executor and is answered with Cancelled; the job's
    folder is gone and its slot is free again."""
    src = tmp_path / "p.jpg"
    src.write_bytes(PHOTO)

    async def main() -> None:
        pool = _held_pool()
        async with running(pki, tmp_path, pool=pool, local=lambda sha: [src]) as h:
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: pool.running == 1, message="the job running")
            h.server.order(CancelOrder("j1", 1))
            await wait_until(lambda: final_reports(h), message="a final report")
            assert final_reports(h) == [WorkCancelled("j1", 1)]
            assert pool.cancelled == ["p.jpg"]
            await wait_until(lambda: h.service.running == 0, message="the slot freed")
            assert not list((h.buffer / "work" / "jobs").iterdir())
    run(main)


def test_a_refused_stale_attempt_is_dropped_without_a_report(pki: TestPki,
                                                             tmp_path: Path) -> None:
    """When the server refuses an attempt (its lease went to another), the job stops and
    says nothing more: any report of it would be refused too."""
    src = tmp_path / "p.jpg"
    src.write_bytes(PHOTO)

    async def main() -> None:
        pool = _held_pool()
        async with running(pki, tmp_path, pool=pool, local=lambda sha: [src]) as h:
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: pool.running == 1, message="the job running")
            h.server.order(ReportRefused("j1", "stale attempt 1"))
            await wait_until(lambda: h.service.running == 0, message="the job dropped")
            assert pool.cancelled == ["p.jpg"]
            reports = len(h.server.stream.reports)
        assert final_reports(h) == []
        later = h.server.stream.reports[reports:]  # after the refusal: no word of the job
        assert all(getattr(r, "job_id", None) is None for r in later), later
    run(main)


def test_two_servers_never_get_more_jobs_run_than_max_concurrent(pki: TestPki,
                                                                 tmp_path: Path) -> None:
    """With one slot, a job from server A lowers B's capacity to 0; a job B assigns anyway
    is released at once; once A's job ends, B's capacity is back to 1."""
    src = tmp_path / "p.jpg"
    src.write_bytes(PHOTO)

    async def main() -> None:
        pool = _held_pool()
        async with running(pki, tmp_path, endpoints=2, pool=pool,
                           local=lambda sha: [src]) as h:
            a, b = h.servers
            a.assign(make_job("a1", PHOTO_SHA))
            await wait_until(lambda: b.stream.of(WorkCapacity) == [WorkCapacity(0)],
                             message="B told there is no slot")
            assert a.stream.of(WorkCapacity) == []
            b.assign(make_job("b1", PHOTO_SHA))
            await wait_until(lambda: final_reports(h, 1), message="B's job answered")
            assert final_reports(h, 1) == [WorkReleased("b1", 1, "no free slot")]
            assert pool.gate is not None
            pool.gate.set()
            await wait_until(lambda: final_reports(h, 0), message="A's job done")
            await wait_until(lambda: b.stream.of(WorkCapacity)[-1] == WorkCapacity(1),
                             message="B's slot back")
            assert pool.most_running == 1
    run(main)


def test_stop_lets_a_running_job_finish_within_grace(pki: TestPki, tmp_path: Path) -> None:
    """On stop the worker takes no more jobs (Capacity 0) and a job that ends within
    grace_s completes normally; only then are the streams closed."""
    src = tmp_path / "p.jpg"
    src.write_bytes(PHOTO)

    async def main() -> None:
        pool = _held_pool()
        async with running(pki, tmp_path, pool=pool, local=lambda sha: [src]) as h:
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: pool.running == 1, message="the job running")
            h.stop.set()
            await wait_until(lambda: h.server.stream.of(WorkCapacity) == [WorkCapacity(0)],
                             message="capacity 0")
            assert pool.gate is not None and not h.task.done()
            pool.gate.set()
            await asyncio.wait_for(h.task, 20)
            assert [type(r) for r in final_reports(h)] == [WorkDone]
            assert h.server.stream.ended
    run(main)


def test_stop_releases_a_job_that_outlasts_grace(pki: TestPki, tmp_path: Path) -> None:
    """A job still running when grace_s is over is cancelled and handed back (Released),
    never left leased to a worker that is gone."""
    src = tmp_path / "p.jpg"
    src.write_bytes(PHOTO)
    config = replace(WorkConfig(enabled=True), grace_s=0.05)

    async def main() -> None:
        pool = _held_pool()
        async with running(pki, tmp_path, pool=pool, config=config,
                           local=lambda sha: [src]) as h:
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: pool.running == 1, message="the job running")
            h.stop.set()
            await asyncio.wait_for(h.task, 20)
            assert final_reports(h) == [WorkReleased("j1", 1, "worker shutting down")]
            assert pool.cancelled == ["p.jpg"] and pool.closed
    run(main)


def test_a_reconnect_declares_the_jobs_still_running(pki: TestPki, tmp_path: Path) -> None:
    """After its stream is cut, the worker reconnects and its Hello holds the job it still
    runs, so the server keeps the lease instead of handing the job out again."""
    src = tmp_path / "p.jpg"
    src.write_bytes(PHOTO)

    async def main() -> None:
        pool = _held_pool()
        async with running(pki, tmp_path, pool=pool, local=lambda sha: [src]) as h:
            h.server.assign(make_job("j1", PHOTO_SHA, attempt=2))
            await wait_until(lambda: pool.running == 1, message="the job running")
            first = h.server.stream
            first.orders.put_nowait(None)  # the server ends the stream
            await wait_until(lambda: len(h.server.streams) == 2 and h.server.stream.reports,
                             message="a second Hello")
            assert h.server.stream.hello.held == (Held("j1", 2),)
            assert pool.gate is not None
            pool.gate.set()
            await wait_until(lambda: h.server.stream.of(WorkDone), message="Done, on it")
    run(main)


def test_an_output_is_uploaded_in_chunks_of_one_mebibyte(pki: TestPki, tmp_path: Path) -> None:
    """An output larger than a chunk arrives whole, in 1 MiB messages."""
    src = tmp_path / "p.jpg"
    src.write_bytes(PHOTO)

    async def main() -> None:
        pool = FakePool(output_bytes=RESULT_CHUNK_BYTES * 2 + 5)
        async with running(pki, tmp_path, pool=pool, local=lambda sha: [src]) as h:
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: final_reports(h), message="a final report")
            [upload] = h.server.uploads
            assert upload.messages == 3 and len(upload.data) == RESULT_CHUNK_BYTES * 2 + 5
    run(main)


def test_a_cancelled_service_still_hands_its_running_job_back(pki: TestPki,
                                                              tmp_path: Path) -> None:
    """If the runtime gives up on the drain and cancels the service, the running job is
    still stopped and Released before the streams close."""
    src = tmp_path / "p.jpg"
    src.write_bytes(PHOTO)

    async def main() -> None:
        pool = _held_pool()
        async with running(pki, tmp_path, pool=pool, local=lambda sha: [src]) as h:
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: pool.running == 1, message="the job running")
            h.task.cancel()
            await asyncio.wait({h.task})
            assert final_reports(h) == [WorkReleased("j1", 1, "worker shutting down")]
            assert h.service.running == 0
    run(main)


def test_executor_progress_renews_and_a_hand_back_releases_the_job(pki: TestPki,
                                                                   tmp_path: Path) -> None:
    """Progress an executor reports reaches the server (PROCESSING, renewing the lease) before
    the attempt's last report; an executor that hands the job back (its Lightroom quit)
    makes the attempt Released, not Failed."""
    src = tmp_path / "p.jpg"
    src.write_bytes(PHOTO)

    async def main() -> None:
        pool = FakePool()
        pool.report_progress = True
        pool.hand_back = "the Lightroom plugin disconnected"
        async with running(pki, tmp_path, pool=pool, local=lambda sha: [src]) as h:
            h.server.assign(make_job("j1", PHOTO_SHA))
            await wait_until(lambda: final_reports(h), message="a final report")
            assert final_reports(h) == [WorkReleased("j1", 1,
                                                     "the Lightroom plugin disconnected")]
            messages = [r.message for r in h.server.stream.reports
                        if isinstance(r, WorkProgress)]
            assert "rendition 1 of 2" in messages
    run(main)


def test_changed_executors_say_hello_again(pki: TestPki, tmp_path: Path) -> None:
    """When the pool's executors change (a plugin connected), every stream gets a new Hello
    with the new capability tags."""
    async def main() -> None:
        pool = FakePool()
        async with running(pki, tmp_path, pool=pool) as h:
            pool.infos = [INFO, ExecutorInfo("lightroom", "13.2")]
            for listener in pool.listeners:
                listener()
            await wait_until(lambda: len([r for r in h.server.stream.reports
                                          if isinstance(r, WorkerHello)]) >= 2,
                             message="a second Hello")
            hellos = [r for r in h.server.stream.reports if isinstance(r, WorkerHello)]
            assert "lightroom" in hellos[-1].capabilities
            assert "lightroom" not in hellos[0].capabilities
    run(main)
