"""The jobs protocol against a real server over mutual TLS, with the test playing the worker
message by message: push assignment, slots, leases and their expiry, fencing of stale
attempts, cancel, restart, results under the durability rule, and scope refusals."""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from photonic.jobs_model import (
    CancelOrder,
    Held,
    JobState,
    ReportRefused,
    StreamTerms,
    WorkCancelled,
    WorkDone,
    WorkerHello,
    WorkFailed,
    WorkHeartbeat,
    WorkProgress,
    WorkReleased,
)
from photonic.v1 import jobs_pb2, sync_pb2, sync_pb2_grpc
from tests.support.daemons import (
    ServerHandle,
    catalog_rows,
    make_agent,
    start_server,
    wait_until,
)
from tests.support.jobs import Admin, ScriptedWorker, jobs_stub
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import (
    job_rows,
    object_bytes,
    output_files,
    stored_digests,
    upload_leftovers,
)

pytestmark = pytest.mark.e2e

SCOPES = {"agents": {"admin": {"scopes": ["admin"]}, "worker": {"scopes": ["sync", "work"]},
                     "desktop": {"scopes": ["sync", "work"]}}}
SHORT_LEASE = {"jobs": {"heartbeat": "300ms", "lease": "1500ms", "max_attempts": 2}}


def _server(root: Path, pki: TestPki, **jobs: object) -> ServerHandle:
    extra: dict[str, object] = {**SCOPES}
    if jobs:
        extra["jobs"] = jobs
    return start_server(root, pki, extra=extra)  # type: ignore[arg-type]


def _photos(server: ServerHandle, root: Path, pki: TestPki, count: int,
            agent_id: str = "laptop") -> list[str]:
    """count photos synced by agent_id; their SHA-256s in name order."""
    agent = make_agent(root / agent_id, pki, agent_id, server)
    for i in range(count):
        make_jpeg(agent.watches["photos"] / f"p{i:02d}.jpg", seed=1000 + i)
    agent.once()
    return [hashlib.sha256((agent.watches["photos"] / f"p{i:02d}.jpg").read_bytes()).hexdigest()
            for i in range(count)]


@pytest.fixture
def jobs_server(tmp_path: Path, pki: TestPki) -> Iterator[ServerHandle]:
    server = _server(tmp_path / "server", pki, heartbeat="300ms", lease="1500ms",
                     max_attempts=2)
    yield server
    server.daemon.terminate()


def _no_more_orders(worker: ScriptedWorker, within_s: float = 0.5) -> bool:
    try:
        order = worker.orders.get(timeout=within_s)
    except queue.Empty:
        return True
    raise AssertionError(f"unexpected order {order!r}")


def test_push_starts_an_idle_worker_at_once_and_never_past_its_slots(
        jobs_server: ServerHandle, tmp_path: Path, pki: TestPki) -> None:
    """A job submitted to an idle connected worker is assigned within 100 ms (push, not
    poll); with one slot the worker holds one job while the rest wait PENDING."""
    shas = _photos(jobs_server, tmp_path, pki, 3)
    admin = Admin(jobs_server)
    worker = ScriptedWorker(jobs_server, "worker", ["facecrop"], max_concurrent=1)
    try:
        worker.next_order()  # the stream's terms
        job = admin.submit("facecrop", [shas[0]])
        assignment = worker.next_assignment()
        # Measured on the server's clock: from the job's creation to its lease.
        assert assignment.job.started_unix_ms - job.created_unix_ms <= 100
        assert assignment.job.job_id == job.job_id and assignment.job.attempts == 1
        batch = admin.submit("facecrop", shas[1:])
        assert _no_more_orders(worker)
        states = sorted(c.state.value for c in admin.children(batch.job_id))
        assert states == ["PENDING", "PENDING"]
        worker.send(WorkReleased(job.job_id, 1, "test"))
        nxt = worker.next_assignment()
        assert nxt.job.parent_id == batch.job_id or nxt.job.job_id == job.job_id
    finally:
        worker.close()
        admin.close()


def test_expired_lease_goes_to_another_worker_and_the_stale_attempt_is_refused(
        jobs_server: ServerHandle, tmp_path: Path, pki: TestPki) -> None:
    """A worker that stops answering loses its lease: the job is PENDING again and a second
    worker gets attempt 2; the first attempt's upload and result are refused; after the
    attempt limit the job FAILS with the last error."""
    [sha] = _photos(jobs_server, tmp_path, pki, 1)
    admin = Admin(jobs_server)
    first = ScriptedWorker(jobs_server, "worker", ["bgremove"])
    job = admin.submit("bgremove", [sha])
    a1 = first.next_assignment()
    first.close()  # dies: no heartbeat, no report
    second = ScriptedWorker(jobs_server, "desktop", ["bgremove"])
    try:
        a2 = second.next_assignment(timeout_s=10)
        assert a2.job.job_id == job.job_id and a2.job.attempts == 2
        stale = ScriptedWorker(jobs_server, "worker", ["bgremove"])
        with pytest.raises(grpc.RpcError) as refused:
            stale.upload(a1.job, b"late output", "late.png")
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
        stale.send(WorkDone(job.job_id, 1, ()))
        order = stale.next_order()
        while not isinstance(order, ReportRefused):
            order = stale.next_order()
        assert order.job_id == job.job_id
        stale.close()
        second.send(WorkFailed(job.job_id, 2, "model ran out of memory", True))
        failed = admin.wait_state(job.job_id, "FAILED")
        assert failed.error == "model ran out of memory" and failed.attempts == 2
        assert output_files(jobs_server, "_derived") == {}
    finally:
        second.close()
        admin.close()


def test_done_stores_verified_outputs_in_the_library_with_their_recipe(
        jobs_server: ServerHandle, tmp_path: Path, pki: TestPki) -> None:
    """An output whose bytes do not match its SHA-256 is refused and nothing is stored;
    a verified one becomes an object, is linked under _derived/<kind>/<input path>.<ext>,
    and is recorded with its recipe."""
    [sha] = _photos(jobs_server, tmp_path, pki, 1)
    admin = Admin(jobs_server)
    worker = ScriptedWorker(jobs_server, "worker", ["bgremove"])
    try:
        job = admin.submit("bgremove", [sha])
        a = worker.next_assignment().job
        worker.send(WorkProgress(job.job_id, 1, 0.1, "reading", processing=True))
        admin.wait_state(job.job_id, "PROCESSING")
        objects_before = stored_digests(jobs_server)
        lying = [jobs_pb2.ResultChunk(job_id=a.job_id, attempt=1, sha256="0" * 64,
                                      total_size=5, name="p00.png", data=b"hello")]
        with pytest.raises(grpc.RpcError) as mismatch:
            worker.stub.UploadResult(iter(lying), timeout=10)
        assert mismatch.value.code() is grpc.StatusCode.DATA_LOSS
        assert stored_digests(jobs_server) == objects_before
        output = worker.upload(a, b"\x89PNG not really" * 1000, "p00.png")
        worker.send(WorkDone(job.job_id, 1, (output,), duration_ms=42))
        done = admin.wait_state(job.job_id, "COMPLETED")
        [stored] = done.outputs
        assert stored.sha256 == output.sha256
        assert stored.library_path == "_derived/bgremove/laptop/photos/p00.jpg.png"
        assert output_files(jobs_server, "_derived") == {stored.library_path: output.sha256}
        assert stored.recipe["worker_id"] == "worker"
        assert stored.recipe["executor"] == "scripted"
    finally:
        worker.close()
        admin.close()


def test_cancel_reaches_the_running_worker_and_a_gone_worker_still_ends_cancelled(
        jobs_server: ServerHandle, tmp_path: Path, pki: TestPki) -> None:
    """Cancelling a pending job ends it at once; a running one gets a CancelOrder on the Work
    stream and ends CANCELLED when the worker confirms; a job whose worker is gone ends
    CANCELLED within the lease."""
    shas = _photos(jobs_server, tmp_path, pki, 3)
    admin = Admin(jobs_server)
    try:
        pending = admin.submit("facecrop", [shas[0]])
        assert admin.cancel(pending.job_id).state is JobState.CANCELLED
        worker = ScriptedWorker(jobs_server, "worker", ["facecrop"])
        running = admin.submit("facecrop", [shas[1]])
        worker.next_assignment()
        admin.cancel(running.job_id)
        order = worker.next_order()
        while not isinstance(order, CancelOrder):
            order = worker.next_order()
        assert order.job_id == running.job_id
        worker.send(WorkCancelled(running.job_id, order.attempt))
        admin.wait_state(running.job_id, "CANCELLED")
        orphan = admin.submit("facecrop", [shas[2]])
        worker.next_assignment()
        worker.close()
        admin.cancel(orphan.job_id)
        assert admin.wait_state(orphan.job_id, "CANCELLED", timeout_s=5).state \
            is JobState.CANCELLED
    finally:
        admin.close()


def test_restart_keeps_every_job_and_honours_the_lease_of_a_reconnecting_worker(
        tmp_path: Path, pki: TestPki) -> None:
    """A server killed mid-job finds every job where it was; the worker that reconnects
    naming its lease keeps it (not handed to anyone else), and completes it."""
    server = _server(tmp_path / "server", pki, heartbeat="300ms", lease="1500ms")
    try:
        shas = _photos(server, tmp_path, pki, 2)
        admin = Admin(server)
        worker = ScriptedWorker(server, "worker", ["facecrop"])
        job = admin.submit("facecrop", [shas[0]])
        waiting = admin.submit("facecrop", [shas[1]])
        a = worker.next_assignment().job
        worker.close()
        admin.close()
        server.daemon.kill()
        server.start()
        admin = Admin(server)
        assert admin.get(job.job_id).state is JobState.READING
        assert admin.get(waiting.job_id).state is JobState.PENDING
        back = ScriptedWorker(server, "worker", ["facecrop"], held=[Held(a.job_id, 1)])
        other = ScriptedWorker(server, "desktop", ["facecrop"])
        given = other.next_assignment()
        assert given.job.job_id == waiting.job_id  # the held job is not handed out again
        back.send(WorkHeartbeat())
        output = back.upload(a, b"face" * 100, "p00.jpg")
        back.send(WorkDone(a.job_id, 1, (output,)))
        done = admin.wait_state(job.job_id, "COMPLETED")
        assert done.attempts == 1
        rows = job_rows(server, "SELECT COUNT(*) FROM jobs")
        assert rows[0][0] == 2
        back.close()
        other.close()
        admin.close()
    finally:
        server.daemon.terminate()


def test_sync_only_agent_may_neither_work_nor_submit_and_is_audited(
        jobs_server: ServerHandle) -> None:
    """An agent with only the sync scope opening Work or submitting a job is refused with
    PERMISSION_DENIED, and both refusals are in the audit log."""
    intruder = Admin(jobs_server, "laptop")
    with pytest.raises(grpc.RpcError) as submit:
        intruder.submit("bgremove", ["a" * 64])
    assert submit.value.code() is grpc.StatusCode.PERMISSION_DENIED
    worker = ScriptedWorker(jobs_server, "laptop", ["bgremove"])
    with pytest.raises(grpc.RpcError) as work:
        worker.next_order()
    assert work.value.code() is grpc.StatusCode.PERMISSION_DENIED
    worker.close()
    intruder.close()
    audit = {(str(a), str(b), str(c)) for a, b, c in catalog_rows(
        jobs_server, "SELECT actor, action, result FROM audit")}
    assert ("laptop", "SubmitJob", "refused") in audit
    assert ("laptop", "Work", "refused") in audit


def test_bad_submits_are_refused_with_what_is_wrong(jobs_server: ServerHandle) -> None:
    """Unknown job type and bad parameters: INVALID_ARGUMENT naming them; a photo the server
    does not hold: NOT_FOUND."""
    admin = Admin(jobs_server)
    try:
        with pytest.raises(grpc.RpcError) as unknown:
            admin.submit("sharpen", ["a" * 64])
        assert unknown.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "sharpen" in (unknown.value.details() or "")
        with pytest.raises(grpc.RpcError) as param:
            admin.submit("facecrop", ["a" * 64], params={"which": "biggest"})
        assert param.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "which" in (param.value.details() or "")
        with pytest.raises(grpc.RpcError) as missing:
            admin.submit("facecrop", ["a" * 64])
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    finally:
        admin.close()


def test_a_finishing_job_frees_its_slot_while_its_outputs_upload(
        jobs_server: ServerHandle, tmp_path: Path, pki: TestPki) -> None:
    """Once a worker says a job's executor is done (finishing), its one slot takes the next
    job while the first one's outputs upload; the first still completes under its lease, and
    uploads that pile up past max_concurrent hold the slot again."""
    shas = _photos(jobs_server, tmp_path, pki, 3)
    admin = Admin(jobs_server)
    worker = ScriptedWorker(jobs_server, "worker", ["facecrop"], max_concurrent=1)
    try:
        batch = admin.submit("facecrop", shas)
        first = worker.next_assignment().job
        assert _no_more_orders(worker, 0.3)
        worker.send(WorkProgress(first.job_id, 1, 0.9, "uploading", processing=True,
                                 finishing=True))
        second = worker.next_assignment().job
        assert second.job_id != first.job_id
        worker.send(WorkProgress(second.job_id, 1, 0.9, "uploading", processing=True,
                                 finishing=True))
        assert _no_more_orders(worker, 0.3)  # two uploads for one slot: the third waits
        output = worker.upload(first, b"crop" * 50, "p00.jpg")
        worker.send(WorkDone(first.job_id, 1, (output,)))
        admin.wait_state(first.job_id, "COMPLETED")
        third = worker.next_assignment().job
        assert third.job_id not in (first.job_id, second.job_id)
        assert third.parent_id == batch.job_id
    finally:
        worker.close()
        admin.close()


def test_every_transition_is_an_event_and_a_vanished_upload_leaves_nothing(
        jobs_server: ServerHandle, tmp_path: Path, pki: TestPki) -> None:
    """StreamEvents carries each job transition (KIND_JOB with its state); an upload cut
    mid-stream leaves no object and no partial file, and the attempt can upload again."""
    [sha] = _photos(jobs_server, tmp_path, pki, 1)
    admin = Admin(jobs_server)
    channel, sync = _sync_stub(jobs_server)
    events = _live_events(sync)
    worker = ScriptedWorker(jobs_server, "worker", ["bgremove"])
    try:
        job = admin.submit("bgremove", [sha])
        a = worker.next_assignment().job
        data = b"partial output " * 20_000
        digest = hashlib.sha256(data).hexdigest()

        def cut() -> Iterator[jobs_pb2.ResultChunk]:
            yield jobs_pb2.ResultChunk(job_id=a.job_id, attempt=1, sha256=digest,
                                       total_size=len(data), name="p00.png", data=data[:65536])
            raise RuntimeError("the worker vanished")

        with pytest.raises(grpc.RpcError):
            worker.stub.UploadResult(cut(), timeout=10)
        wait_until(lambda: not upload_leftovers(jobs_server),
                   message="no partial upload left")
        assert object_bytes(jobs_server, digest) is None
        output = worker.upload(a, data, "p00.png")
        worker.send(WorkDone(a.job_id, 1, (output,)))
        admin.wait_state(job.job_id, "COMPLETED")
        seen: list[str] = []
        while seen[-1:] != ["COMPLETED"]:
            ev = events.get(timeout=30)
            if ev.kind == sync_pb2.Event.KIND_JOB and ev.job_id == job.job_id:
                seen.append(ev.job_state)
        assert seen == ["PENDING", "READING", "COMPLETED"]
    finally:
        channel.close()  # ends the event stream too
        worker.close()
        admin.close()


def _live_events(sync: sync_pb2_grpc.PhotonicSyncStub) -> queue.Queue[sync_pb2.Event]:
    """The admin's StreamEvents, read into a queue by a thread, once the server is known to
    have subscribed it to the event hub: the call returns before the server has, and an event
    published meanwhile (a job's PENDING, under load) never reaches it. Known by a probe event
    (the admin registering) that is sent until one arrives; the queue starts after it."""
    stream = sync.StreamEvents(sync_pb2.StreamEventsRequest(), timeout=60)
    events: queue.Queue[sync_pb2.Event] = queue.Queue()

    def pump() -> None:
        with contextlib.suppress(grpc.RpcError):
            for ev in stream:
                events.put(ev)

    threading.Thread(target=pump, name="events", daemon=True).start()

    def probed() -> bool:
        sync.RegisterAgent(sync_pb2.RegisterAgentRequest(agent_id="admin", hostname="probe"),
                           timeout=10)
        with contextlib.suppress(queue.Empty):
            while True:
                ev = events.get(timeout=0.2)
                if ev.kind == sync_pb2.Event.KIND_AGENT_REGISTERED and ev.detail == "probe":
                    return True
        return False

    wait_until(probed, 30, message="the event stream to be live")
    return events


def _sync_stub(server: ServerHandle) -> tuple[grpc.Channel, sync_pb2_grpc.PhotonicSyncStub]:
    from photonic.tls import channel_credentials

    pki = server.pki
    channel = grpc.secure_channel(server.endpoint, channel_credentials(
        pki.agent_cert("admin"), pki.agent_key("admin"), pki.ca))
    return channel, sync_pb2_grpc.PhotonicSyncStub(channel)  # type: ignore[no-untyped-call]


def test_hostile_worker_messages_are_refused_without_harm(jobs_server: ServerHandle) -> None:
    """A Work stream that does not start with Hello is refused; reports about jobs the
    worker does not hold are refused on the stream; an output named like a path, sized
    absurdly, or for a job not leased to the caller is INVALID_ARGUMENT or
    PERMISSION_DENIED; the server keeps serving."""
    channel, stub = jobs_stub(jobs_server, "worker")
    no_hello = stub.Work(iter([jobs_pb2.WorkerMessage(heartbeat=jobs_pb2.WorkerMessage
                                                      .Heartbeat())]))
    with pytest.raises(grpc.RpcError) as refused:
        list(no_hello)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    worker = ScriptedWorker(jobs_server, "worker", ["bgremove"], max_concurrent=10_000)
    try:
        worker.send(WorkDone("no-such-job", 1, ()))
        worker.send(WorkFailed("x" * 5000, 7, "boom", True))
        worker.send(WorkProgress("no-such-job", 3, 2.5, "\x00" * 300, processing=True))
        orders = [worker.next_order() for _ in range(4)]  # the terms, then the refusals
        assert isinstance(orders[0], StreamTerms)
        assert all(isinstance(o, ReportRefused) for o in orders[1:])
        assert {o.job_id for o in orders[1:] if isinstance(o, ReportRefused)} == {
            "no-such-job", "x" * 5000}
        for name, size, code in (("../../etc/passwd", 10, grpc.StatusCode.INVALID_ARGUMENT),
                                 ("ok.png", 1 << 60, grpc.StatusCode.INVALID_ARGUMENT),
                                 ("ok.png", 10, grpc.StatusCode.PERMISSION_DENIED)):
            chunk = jobs_pb2.ResultChunk(job_id="nope", attempt=1, sha256="a" * 64,
                                         total_size=size, name=name, data=b"0123456789")
            with pytest.raises(grpc.RpcError) as bad:
                worker.stub.UploadResult(iter([chunk]), timeout=10)
            assert bad.value.code() is code, name
    finally:
        worker.close()
        channel.close()
    admin = Admin(jobs_server)
    assert admin.children("none") == []
    admin.close()


def test_a_later_hello_changes_what_the_worker_is_given(
        jobs_server: ServerHandle, tmp_path: Path, pki: TestPki) -> None:
    """A worker whose capabilities change mid-stream (Lightroom opened) says Hello again and
    is given the jobs it can run now; before, they waited."""
    [sha] = _photos(jobs_server, tmp_path, pki, 1)
    admin = Admin(jobs_server)
    worker = ScriptedWorker(jobs_server, "worker", ["bgremove"])
    try:
        worker.next_order()  # the stream's terms
        job = admin.submit("facecrop", [sha])
        assert _no_more_orders(worker, 0.3)
        worker.send(WorkerHello(("bgremove", "facecrop"), 1))
        assert worker.next_assignment().job.job_id == job.job_id
    finally:
        worker.close()
        admin.close()
