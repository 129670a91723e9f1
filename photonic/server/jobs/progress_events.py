"""Job progress as live events, throttled per job: a worker may report progress as often as
it likes (the Lightroom plugin reports every rendition), but the web's ring keeps only the
last 1000 events, so each job gets at most one progress event per interval. The newest
report within an interval is held and published when the interval ends, so the last
progress of a run is never lost, unless a state change of the job supersedes it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from photonic.jobs_model import Job
from photonic.server.events import ServerEvent

PROGRESS_INTERVAL_S = 0.25
"""At most four progress events per second per job."""
PROGRESS_KIND = "job_progress"


class Timer(Protocol):
    def cancel(self) -> None: ...


Schedule = Callable[[float, Callable[[], None]], Timer]
"""Runs a callback after a delay in seconds (the event loop's call_later)."""


def _call_later(delay_s: float, callback: Callable[[], None]) -> Timer:
    return asyncio.get_running_loop().call_later(delay_s, callback)


def progress_event(job: Job, worker_id: str, fraction: float, message: str) -> ServerEvent:
    """detail is a small JSON object, {"fraction": 0.42, "message": "..."}, so a page can
    move one progress bar without reading the job again."""
    detail = json.dumps({"fraction": round(max(0.0, min(1.0, fraction)), 4),
                         "message": message[:200]})
    return ServerEvent(PROGRESS_KIND, worker_id or job.submitter,
                       sha256=job.input_sha256[0] if job.input_sha256 else "", detail=detail,
                       job_id=job.job_id, job_state=job.state.value)


@dataclass
class _JobSlot:
    sent_s: float
    held: ServerEvent | None = None
    timer: Timer | None = None


class ProgressThrottle:
    """Per job: the first report goes out at once; later ones within interval_s of the last
    one sent wait, each replacing the one held, until the interval has passed."""

    def __init__(self, publish: Callable[[ServerEvent], None], *,
                 interval_s: float = PROGRESS_INTERVAL_S,
                 clock_s: Callable[[], float] = time.monotonic,
                 schedule: Schedule = _call_later) -> None:
        self._publish = publish
        self._interval_s = interval_s
        self._clock_s = clock_s
        self._schedule = schedule
        self._jobs: dict[str, _JobSlot] = {}

    def offer(self, ev: ServerEvent) -> None:
        now = self._clock_s()
        slot = self._jobs.get(ev.job_id)
        if slot is None or (now - slot.sent_s >= self._interval_s and slot.timer is None):
            self._jobs[ev.job_id] = _JobSlot(now)
            self._publish(ev)
            return
        slot.held = ev
        if slot.timer is None:
            wait_s = max(0.0, slot.sent_s + self._interval_s - now)
            slot.timer = self._schedule(wait_s, lambda: self._flush(ev.job_id))

    def forget(self, job_id: str) -> None:
        """The job changed state: that event says more than any progress held for it (and
        a page reads the job again), so the held one is dropped, and the slot with it."""
        slot = self._jobs.pop(job_id, None)
        if slot is not None and slot.timer is not None:
            slot.timer.cancel()

    def close(self) -> None:
        for job_id in list(self._jobs):
            self.forget(job_id)

    def _flush(self, job_id: str) -> None:
        slot = self._jobs.get(job_id)
        if slot is None:
            return
        slot.timer = None
        if slot.held is not None:
            held, slot.held = slot.held, None
            slot.sent_s = self._clock_s()
            self._publish(held)

    @property
    def tracked(self) -> int:
        """Jobs with a slot (bounded by the jobs running: each state change drops one)."""
        return len(self._jobs)
