"""The per-job throttle of job_progress events: at most one per interval per job, the
newest report held and published when the interval ends (never lost), and a state change
dropping what is held; on a fake clock and a fake timer, so no test sleeps."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable

from photonic.jobs_model import Job, JobId, JobState
from photonic.server.events import ServerEvent
from photonic.server.jobs.progress_events import ProgressThrottle, progress_event


class FakeTimers:
    """call_later on a clock the test moves: run_due() fires what is due, in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pending: list[tuple[float, Callable[[], None], FakeTimer]] = []

    def clock(self) -> float:
        return self.now

    def schedule(self, delay_s: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer()
        self.pending.append((self.now + delay_s, callback, timer))
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = sorted((p for p in self.pending if p[0] <= self.now), key=lambda p: p[0])
        self.pending = [p for p in self.pending if p[0] > self.now]
        for _at, callback, timer in due:
            if not timer.cancelled:
                callback()


class FakeTimer:
    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def _event(job_id: str, fraction: float) -> ServerEvent:
    return ServerEvent("job_progress", "worker", job_id=job_id, detail=str(fraction))


def _throttle() -> tuple[ProgressThrottle, FakeTimers, list[ServerEvent]]:
    timers = FakeTimers()
    published: list[ServerEvent] = []
    throttle = ProgressThrottle(published.append, interval_s=0.25, clock_s=timers.clock,
                                schedule=timers.schedule)
    return throttle, timers, published


def test_a_burst_gives_one_event_at_once_and_the_last_one_when_the_interval_ends() -> None:
    throttle, timers, published = _throttle()
    for i in range(100):
        throttle.offer(_event("j", i / 100))
    assert [e.detail for e in published] == ["0.0"]
    timers.advance(0.25)
    assert [e.detail for e in published] == ["0.0", "0.99"]
    timers.advance(10)
    assert len(published) == 2


def test_a_steady_chatty_worker_gets_at_most_one_event_per_interval() -> None:
    """Reports every 10 ms for 2 s: about 4 events per second, never two within an
    interval, and the last report is the last event."""
    timers = FakeTimers()
    published: list[ServerEvent] = []
    times: list[float] = []

    def stamped(ev: ServerEvent) -> None:
        times.append(timers.now)
        published.append(ev)

    throttle = ProgressThrottle(stamped, interval_s=0.25, clock_s=timers.clock,
                                schedule=timers.schedule)
    for i in range(200):
        throttle.offer(_event("j", i))
        timers.advance(0.01)
    timers.advance(1)
    assert 8 <= len(times) <= 9
    assert all(b - a >= 0.25 - 1e-9 for a, b in itertools.pairwise(times))
    assert published[-1].detail == "199"


def test_jobs_are_throttled_apart() -> None:
    throttle, timers, published = _throttle()
    throttle.offer(_event("a", 0.1))
    throttle.offer(_event("b", 0.1))
    throttle.offer(_event("a", 0.2))
    assert [(e.job_id, e.detail) for e in published] == [("a", "0.1"), ("b", "0.1")]
    timers.advance(0.3)
    assert [(e.job_id, e.detail) for e in published][-1] == ("a", "0.2")


def test_a_state_change_drops_what_is_held_and_the_job_s_slot() -> None:
    """The state event (which makes a page read the job) supersedes held progress: nothing
    stale follows it, and the next report after it goes out at once."""
    throttle, timers, published = _throttle()
    throttle.offer(_event("j", 0.1))
    throttle.offer(_event("j", 0.5))
    throttle.forget("j")
    assert throttle.tracked == 0
    timers.advance(1)
    assert [e.detail for e in published] == ["0.1"]
    throttle.offer(_event("j", 0.6))
    assert [e.detail for e in published] == ["0.1", "0.6"]


def test_after_a_quiet_interval_a_report_goes_out_at_once() -> None:
    throttle, timers, published = _throttle()
    throttle.offer(_event("j", 0.1))
    timers.advance(0.3)
    throttle.offer(_event("j", 0.2))
    assert [e.detail for e in published] == ["0.1", "0.2"]


def test_the_event_carries_the_job_its_state_and_a_small_json_detail() -> None:
    job = Job(JobId("j1"), "bgremove", JobState.PROCESSING, input_sha256=("ab" * 32,),
              submitter="web:ops")
    ev = progress_event(job, "worker", 1.7, "x" * 500)
    assert (ev.kind, ev.agent_id, ev.job_id, ev.job_state, ev.sha256) == (
        "job_progress", "worker", "j1", "PROCESSING", "ab" * 32)
    assert json.loads(ev.detail) == {"fraction": 1.0, "message": "x" * 200}
