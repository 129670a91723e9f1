"""The contract between the agent's work service and the executors that turn one input photo
into outputs. The work service knows nothing of models; an executor knows nothing of gRPC."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class ExecutorError(Exception):
    """The job fails with this message. retryable=False when the input itself is the problem
    (a corrupt image, no face found): another attempt cannot help."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class HandBack(Exception):
    """The executor cannot run this job here now (its Lightroom quit): the job goes back to
    the server, not failed, and runs when the executor returns or elsewhere."""


Progress = Callable[[float, str], None]
"""An executor's report of how far a job is (0..1, a short message); renews the lease."""


@dataclass(frozen=True)
class JobTicket:
    """Which job attempt a run serves, for executors that talk about it to someone else (the
    Lightroom plugin), and where they report progress."""

    job_id: str
    attempt: int
    progress: Progress


@dataclass(frozen=True)
class ExecutorInfo:
    """What a worker advertises: the executor's name (its capability tag and job kind), its
    version, and the model it loaded (file name and SHA-256) for every output's recipe."""

    name: str
    version: str
    model_name: str = ""
    model_sha256: str = ""
    required_params: tuple[str, ...] = ()
    extra_tags: tuple[str, ...] = ()  # e.g. "gpu"


@dataclass(frozen=True)
class Output:
    path: Path  # a file inside the job's output folder
    name: str   # the name it is known by (its input's stem + the executor's extension)


@dataclass(frozen=True)
class Execution:
    outputs: list[Output]
    details: Mapping[str, object] = field(default_factory=dict)  # recorded in the recipe


class Executor(Protocol):
    info: ExecutorInfo

    def run(self, input_path: Path, output_dir: Path, params: Mapping[str, object]
            ) -> Execution:
        """Runs in an isolated child process (see runner.py); raises ExecutorError."""
        ...
