"""How `photonic jobs` shows jobs to a person: one-line summaries, rich tables, and live
progress bars; nothing here talks to a server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

from photonic.jobs_model import Job, JobState
from photonic.units import format_size

_STATE_STYLE = {
    JobState.PENDING: "yellow", JobState.READING: "cyan", JobState.PROCESSING: "cyan",
    JobState.COMPLETED: "green", JobState.FAILED: "red", JobState.CANCELLED: "magenta",
}


def when(unix_ms: int) -> str:
    """Local time of a timestamp, or "-" for none."""
    if unix_ms <= 0:
        return "-"
    return dt.datetime.fromtimestamp(unix_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def kind_of(job: Job) -> str:
    return f"batch of {job.batch_kind}" if job.is_batch and job.batch_kind else job.kind


def done_fraction(job: Job) -> float:
    """How far a job is, 0..1: a batch by its finished children, a job by its progress."""
    if job.state.terminal:
        return 1.0
    if job.batch is not None:
        return job.batch.finished / job.batch.total if job.batch.total else 0.0
    return min(max(job.progress, 0.0), 1.0)


def summary(job: Job) -> str:
    """One line: id, kind, state and what matters about it now."""
    text = f"{job.job_id}  {kind_of(job)}  {job.state.value}"
    if job.batch is not None:
        b = job.batch
        text += (f"  {b.completed}/{b.total} completed, {b.failed} failed, "
                 f"{b.running} running, {b.pending} pending")
        if b.cancelled:
            text += f", {b.cancelled} cancelled"
    elif job.state.leased and job.progress > 0:
        text += f"  {job.progress:.0%}"
        if job.progress_message:
            text += f" {job.progress_message}"
    if job.error:
        text += f"  error: {job.error}"
    return text


def jobs_table(jobs: Sequence[Job], *, title: str | None = None) -> Table:
    """One row per job: the `list` output and a batch's children in `status`."""
    table = Table(title=title, show_edge=False, header_style="bold")
    for column in ("ID", "TYPE", "STATE", "INPUT", "PROGRESS", "CREATED", "WORKER", "NOTE"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        table.add_row(job.job_id, kind_of(job), Text(job.state.value,
                                                     style=_STATE_STYLE[job.state]),
                      _input_of(job), f"{done_fraction(job):.0%}", when(job.created_unix_ms),
                      job.worker_id or "-", _note(job))
    return table


def _input_of(job: Job) -> str:
    if job.batch is not None:
        return f"{job.batch.total} photos"
    if job.input_path:
        return job.input_path
    if job.input_sha256:
        more = f" +{len(job.input_sha256) - 1}" if len(job.input_sha256) > 1 else ""
        return job.input_sha256[0][:12] + more
    return "-"


def _note(job: Job) -> str:
    if job.error:
        return job.error
    if job.outputs:
        return ", ".join(f"{o.name or o.sha256[:12]} ({format_size(o.size)})"
                         for o in job.outputs)
    return job.progress_message


def job_details(job: Job, children: Sequence[Job] = ()) -> RenderableType:
    """The `status` view: the job's fields, then its children's table for a batch."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [
        ("job", job.job_id), ("type", kind_of(job)), ("state", job.state.value),
        ("created", when(job.created_unix_ms)), ("finished", when(job.finished_unix_ms)),
    ]
    if job.batch is not None:
        b = job.batch
        rows.append(("children", f"{b.total} total, {b.completed} completed, {b.failed} "
                                 f"failed, {b.cancelled} cancelled, {b.running} running, "
                                 f"{b.pending} pending"))
    else:
        rows += [("input", _input_of(job)), ("progress", f"{done_fraction(job):.0%} "
                                                         f"{job.progress_message}".rstrip()),
                 ("worker", job.worker_id or "-"),
                 ("tries", _tries_of(job))]
    if job.params:
        rows.append(("params", job.params_json))
    if job.requires:
        rows.append(("requires", ", ".join(job.requires)))
    if job.error:
        rows.append(("error", job.error))
    for out in job.outputs:
        rows.append(("output", f"{out.name} {format_size(out.size)} {out.sha256}"))
    for name, value in rows:
        grid.add_row(name, value)
    if not children:
        return grid
    return Group(grid, Text(""), jobs_table(children))


def outcome(job: Job) -> tuple[bool, str]:
    """(succeeded, sentence) for a finished job; a batch succeeds only if every child did."""
    if job.batch is not None and job.state.terminal:
        b = job.batch
        bad = b.failed + b.cancelled
        if bad or job.state is not JobState.COMPLETED:
            parts = [f"{b.failed} failed"] + ([f"{b.cancelled} cancelled"] if b.cancelled
                                               else [])
            return False, (f"batch {job.job_id} {job.state.value}: {' and '.join(parts)} of "
                           f"{b.total} jobs")
        return True, f"batch {job.job_id} COMPLETED: {b.completed} of {b.total} jobs"
    if job.state is JobState.COMPLETED:
        return True, f"job {job.job_id} COMPLETED"
    detail = f": {job.error}" if job.error else ""
    return False, f"job {job.job_id} {job.state.value}{detail}"


class ProgressBoard:
    """Live bars, one per followed job (a batch counts finished children), on stderr so
    stdout keeps only results."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[note]}"),
            console=console or Console(stderr=True))
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressBoard:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def show(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            # Whole steps: a batch's children, or percent of one job.
            total = job.batch.total if job.batch is not None and job.batch.total else 100
            done = round(done_fraction(job) * total)
            note = _board_note(job)
            task = self._tasks.get(job.job_id)
            if task is None:
                self._tasks[job.job_id] = self._progress.add_task(
                    f"{job.job_id} {kind_of(job)}", total=total, completed=done, note=note)
            else:
                self._progress.update(task, total=total, completed=done, note=note)


def _board_note(job: Job) -> str:
    if job.batch is not None:
        b = job.batch
        return (f"{job.state.value}: {b.completed} done, {b.failed} failed, "
                f"{b.running} running, {b.pending} pending")
    message = f" {job.progress_message}" if job.progress_message else ""
    error = f" {job.error}" if job.error else ""
    return f"{job.state.value}{message}{error}"


def _tries_of(job: Job) -> str:
    """Tries against the limit; hand-backs (leases returned unrun) said apart, since they
    are why the attempt numbers in the logs run ahead of the tries."""
    text = f"{job.tries} of {job.max_attempts}"
    if job.handbacks:
        text += f" ({job.handbacks} handed back unrun)"
    return text
