"""A job's outputs as one ZIP download: the outputs of the job and of its children, each named
after its input file and the job kind (`IMG_0001.jpg` + bgremove's `IMG_0001.png` ->
`IMG_0001.bgremove.png`), read block by block from the object store and written through
media/zipstream, so an archive is never held whole on the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from photonic import errors
from photonic.jobs_model import Job, JobFilter, JobOutput
from photonic.media.zipstream import ZipStream
from photonic.server.jobs.service import JobsService

MAX_CHILDREN = 10_000
"""The most children one listing of the queue returns; a larger batch is refused rather
than cut short without a word."""
MAX_NAME_CHARS = 200


@dataclass(frozen=True)
class ResultFile:
    name: str
    """Unique within the archive (case-insensitively), one plain file name."""
    sha256: str
    size: int
    modified_unix_ms: int


@dataclass(frozen=True)
class ResultsBundle:
    job_id: str
    files: tuple[ResultFile, ...]

    @property
    def file_name(self) -> str:
        return f"photonic-{self.job_id}-results.zip"


class ResultsArchive:
    def __init__(self, jobs: JobsService) -> None:
        self._jobs = jobs

    async def bundle(self, job_id: str) -> ResultsBundle:
        """What the archive will hold: NotFound for an unknown job, NotReady while it (and
        its children) have no output."""
        job = await self._jobs.get(job_id)
        jobs = [job]
        if job.is_batch:
            total = job.batch.total if job.batch else 0
            if total > MAX_CHILDREN:
                raise errors.InvalidInput(
                    f"job {job.job_id} has {total} children; a results archive covers at "
                    f"most {MAX_CHILDREN}: download each output at /download/<sha256>")
            children = await self._jobs.find(JobFilter(parent_id=job.job_id,
                                                       limit=MAX_CHILDREN))
            jobs += sorted(children, key=lambda j: (j.input_path, j.job_id))
        names = UniqueNames()
        files = tuple(ResultFile(names.take(entry_name(j, o)), o.sha256, o.size,
                                 j.finished_unix_ms)
                      for j in jobs for o in j.outputs)
        if not files:
            if job.state.terminal:
                raise errors.NotReady(f"job {job.job_id} ended {job.state.value} without "
                                      "any output")
            raise errors.NotReady(f"job {job.job_id} has no outputs yet ({job.state.value}); "
                                  "ask again once it has finished")
        return ResultsBundle(job.job_id, files)

    async def stream(self, bundle: ResultsBundle) -> AsyncIterator[bytes]:
        """The archive's bytes in blocks of about one stored chunk (1 MiB)."""
        archive = ZipStream()
        for f in bundle.files:
            with archive.open(f.name, f.size, f.modified_unix_ms) as entry:
                async for _, data, _ in self._jobs.results.read(f.sha256, 0):
                    entry.write(data)
                    if block := archive.take():
                        yield block
            if block := archive.take():
                yield block
        yield archive.finish()


def entry_name(job: Job, output: JobOutput) -> tuple[str, str]:
    """(input's stem, `<kind>.<what the output adds to it>`): joined with a dot they make
    one plain file name, `IMG_0001` + `bgremove.png`."""
    base = (PurePosixPath(job.input_path).name if job.input_path
            else (job.input_sha256[0][:16] if job.input_sha256 else job.job_id))
    stem = PurePosixPath(base).stem or base
    added = (output.name[len(stem) + 1:] if output.name.startswith(stem + ".")
             else output.name)
    tail = f"{job.kind}.{added}" if added else job.kind
    return _plain(stem).lstrip(".")[:MAX_NAME_CHARS] or "output", _plain(tail)[:MAX_NAME_CHARS]


def _plain(text: str) -> str:
    return "".join("_" if (not c.isprintable() or c in "/\\:") else c for c in text)


class UniqueNames:
    """Hands out each name once: a second `a` + `bgremove.png` becomes `a-2.bgremove.png`."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def take(self, parts: tuple[str, str]) -> str:
        stem, tail = parts
        candidate, n = f"{stem}.{tail}", 1
        while candidate.lower() in self._taken:
            n += 1
            candidate = f"{stem}-{n}.{tail}"
        self._taken.add(candidate.lower())
        return candidate
