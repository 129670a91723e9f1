"""Domain types of the jobs capability, shared by the server, the worker agent and the CLI;
protobuf messages never travel past jobs_wire.py."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType

JobId = NewType("JobId", str)

BATCH_KIND = "batch"
"""A parent job's kind: it runs nothing itself; its children carry the real kind."""


class JobState(StrEnum):
    PENDING = "PENDING"
    READING = "READING"        # leased; the worker obtains the input
    PROCESSING = "PROCESSING"  # the executor runs
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def leased(self) -> bool:
        return self in (JobState.READING, JobState.PROCESSING)


_TERMINAL = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})


@dataclass(frozen=True)
class JobOutput:
    sha256: str
    name: str
    size: int
    library_path: str = ""
    recipe: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchCounts:
    total: int = 0
    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.cancelled


@dataclass(frozen=True)
class Job:
    job_id: JobId
    kind: str
    state: JobState
    input_sha256: tuple[str, ...] = ()
    params: Mapping[str, object] = field(default_factory=dict)
    worker_id: str = ""
    attempts: int = 0
    max_attempts: int = 3
    error: str = ""
    created_unix_ms: int = 0
    updated_unix_ms: int = 0
    parent_id: str = ""
    requires: tuple[str, ...] = ()
    priority: int = 0
    submitter: str = ""
    progress: float = 0.0
    progress_message: str = ""
    batch: BatchCounts | None = None
    batch_kind: str = ""
    outputs: tuple[JobOutput, ...] = ()
    input_path: str = ""
    input_size: int = 0
    lease_expires_unix_ms: int = 0
    timeout_ms: int = 0
    started_unix_ms: int = 0
    finished_unix_ms: int = 0
    handbacks: int = 0  # leases handed back unrun: attempt numbers spent, no tries

    @property
    def tries(self) -> int:
        """Leases that ran (or run now): attempts less those handed back without running,
        the number a person compares with max_attempts."""
        return self.attempts - self.handbacks

    @property
    def is_batch(self) -> bool:
        return self.kind == BATCH_KIND

    @property
    def params_json(self) -> str:
        return json.dumps(dict(self.params), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class JobRequest:
    """What a submitter asks for; exactly one input selector is set."""

    kind: str
    input_sha256: tuple[str, ...] = ()
    params: Mapping[str, object] = field(default_factory=dict)
    library_paths: tuple[str, ...] = ()
    library_folder: str = ""
    shoot_of: str = ""
    requires: tuple[str, ...] = ()
    priority: int = 0


@dataclass(frozen=True)
class JobFilter:
    state: JobState | None = None
    kind: str = ""
    parent_id: str = ""
    top_level: bool = False
    limit: int = 100


# The worker's side of a Work stream ---------------------------------------------------------


@dataclass(frozen=True)
class Held:
    job_id: str
    attempt: int


@dataclass(frozen=True)
class WorkerHello:
    capabilities: tuple[str, ...]
    max_concurrent: int
    held: tuple[Held, ...] = ()
    version: str = ""
    executors: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkProgress:
    job_id: str
    attempt: int
    fraction: float = 0.0
    message: str = ""
    processing: bool = False
    finishing: bool = False
    """The executor is done; the outputs are being uploaded (the slot is free again)."""


@dataclass(frozen=True)
class WorkDone:
    job_id: str
    attempt: int
    outputs: tuple[JobOutput, ...]
    duration_ms: int = 0


@dataclass(frozen=True)
class WorkFailed:
    job_id: str
    attempt: int
    error: str
    retryable: bool


@dataclass(frozen=True)
class WorkReleased:
    job_id: str
    attempt: int
    reason: str


@dataclass(frozen=True)
class WorkCancelled:
    job_id: str
    attempt: int


@dataclass(frozen=True)
class WorkHeartbeat:
    pass


@dataclass(frozen=True)
class WorkCapacity:
    """How many jobs the stream may hold now (0..Hello.max_concurrent)."""

    slots: int


WorkerReport = (WorkerHello | WorkProgress | WorkDone | WorkFailed | WorkReleased
                | WorkCancelled | WorkHeartbeat | WorkCapacity)


# The server's side of a Work stream ---------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    job: Job  # job.attempts is the fencing token
    lease_expires_unix_ms: int


@dataclass(frozen=True)
class CancelOrder:
    job_id: str
    attempt: int


@dataclass(frozen=True)
class StreamTerms:
    """The first message of a Work stream: how often to beat and how long a lease lasts."""

    heartbeat_ms: int
    lease_ms: int


@dataclass(frozen=True)
class ReportRefused:
    job_id: str
    reason: str


ServerOrder = Assignment | CancelOrder | StreamTerms | ReportRefused


# Capability tags ----------------------------------------------------------------------------


def parse_tags(tags: Sequence[str]) -> dict[str, str]:
    """`["gpu", "os=macos", "lightroom=13.2"]` -> {"gpu": "", "os": "macos", ...}."""
    parsed: dict[str, str] = {}
    for tag in tags:
        name, _, value = tag.partition("=")
        parsed[name.strip().lower()] = value.strip()
    return parsed


def satisfies(capabilities: Mapping[str, str], kind: str, requires: Sequence[str]) -> bool:
    """A worker runs a job when it has the job's kind as a tag and every required tag; a
    required tag with a value needs that exact value (`os=macos`), or at least that version
    when written `lightroom>=13`."""
    if kind not in capabilities:
        return False
    for need in requires:
        if ">=" in need:
            name, _, minimum = need.partition(">=")
            have = capabilities.get(name.strip().lower())
            if have is None or _version(have) < _version(minimum.strip()):
                return False
            continue
        name, sep, value = need.partition("=")
        have = capabilities.get(name.strip().lower())
        if have is None or (sep and have != value.strip()):
            return False
    return True


def _version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
