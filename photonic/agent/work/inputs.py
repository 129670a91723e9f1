"""Obtains a job's input by its SHA-256: a local copy this agent synced, re-hashed before it is
trusted, or else the server's bytes through FetchBlob, resumed after a cut and verified.

Fetched inputs stay in a small cache under `<buffer>/work/inputs/` (bounded in bytes, partial
fetches included, oldest dropped first), since a retried attempt or the next job of a batch
often needs them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from photonic import errors
from photonic.agent.work.metrics import WorkerMetrics
from photonic.agent.work.seams import LocalCopies
from photonic.logfmt import event
from photonic.media.hashing import sha256_file
from photonic.models import is_content_hash

log = logging.getLogger("photonic.agent.work")

FETCH_ATTEMPTS = 4
"""FetchBlob calls per input: the first and three resumes after a cut."""
DEFAULT_CACHE_BYTES = 512 * 1024 * 1024

BlobFetcher = Callable[[str, int, str, int], AsyncIterator[bytes]]
"""fetch_blob(sha256, offset, job_id, attempt) of the job's endpoint."""


class InputMismatch(errors.IntegrityError):
    """The fetched bytes do not hash to the job's input: the attempt fails, retryably."""


class InputStore:
    """The inputs of running jobs. obtain() and release() pair up per job: a cached input is
    never dropped while a job reads it."""

    def __init__(self, folder: Path, local_copies: LocalCopies, metrics: WorkerMetrics, *,
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._folder = folder
        self._local_copies = local_copies
        self._metrics = metrics
        self._cache_bytes = cache_bytes
        self._locks: dict[str, asyncio.Lock] = {}
        self._in_use: Counter[str] = Counter()
        self.fetched_bytes = 0
        """Bytes fetched from servers so far (what the metric counts), for tests and status."""
        self._verified_as: dict[Path, tuple[int, int, int]] = {}

    async def obtain(self, sha256: str, job_id: str, attempt: int, fetch: BlobFetcher) -> Path:
        """A path holding exactly the content sha256. Raises InputMismatch when the server's
        bytes are not it, errors.Transient when the server stays unreachable."""
        if not is_content_hash(sha256):
            raise errors.InvalidInput(f"job input {sha256[:80]!r} is not a SHA-256")
        self._in_use[sha256] += 1
        try:
            local = await self._verified_local_copy(sha256)
            if local is not None:
                return local
            async with self._locks.setdefault(sha256, asyncio.Lock()):
                return await self._fetched(sha256, job_id, attempt, fetch)
        except BaseException:
            self.release(sha256)
            raise

    def release(self, sha256: str) -> None:
        self._in_use[sha256] -= 1
        if self._in_use[sha256] <= 0:
            del self._in_use[sha256]

    async def prune(self) -> None:
        """Drops the oldest cached inputs and partial fetches no job uses until the cache
        fits its bound."""
        await asyncio.to_thread(self._prune_blocking, frozenset(self._in_use))

    async def _verified_local_copy(self, sha256: str) -> Path | None:
        """The first local copy that still hashes to sha256; a file rewritten since it was
        synced is passed over, never trusted on the index's word."""
        candidates = await asyncio.to_thread(self._local_copies, sha256)
        for path in candidates:
            try:
                before = await asyncio.to_thread(_signature, path)
                digest, _ = await asyncio.to_thread(sha256_file, path)
                after = await asyncio.to_thread(_signature, path)
            except OSError:
                continue
            if digest == sha256 and before == after:
                event(log, "input_local", sha256=sha256[:12], path=str(path))
                self._verified_as[path] = after
                return path
        return None

    async def unchanged(self, path: Path) -> bool:
        """Whether a local copy is still as it was when it hashed right (size, mtime, inode):
        a photo edited while the executor read it must not pass for the job's input."""
        expected = self._verified_as.get(path)
        if expected is None:
            return True  # a fetched input: our own file in the cache
        try:
            return await asyncio.to_thread(_signature, path) == expected
        except OSError:
            return False

    async def _fetched(self, sha256: str, job_id: str, attempt: int, fetch: BlobFetcher
                       ) -> Path:
        final = self._folder / sha256
        if final.is_file():
            digest, _ = await asyncio.to_thread(sha256_file, final)
            if digest == sha256:
                await asyncio.to_thread(os.utime, final)  # recently used: pruned last
                return final
            final.unlink(missing_ok=True)
        partial = self._folder / f"{sha256}.part"
        await asyncio.to_thread(self._folder.mkdir, parents=True, exist_ok=True)
        await self._download(sha256, job_id, attempt, fetch, partial)
        digest, _ = await asyncio.to_thread(sha256_file, partial)
        if digest != sha256:
            partial.unlink(missing_ok=True)
            raise InputMismatch(f"the server's bytes for input {sha256[:12]} hash to "
                                f"{digest[:12]}; the partial copy was deleted")
        await asyncio.to_thread(os.replace, partial, final)
        return final

    async def _download(self, sha256: str, job_id: str, attempt: int, fetch: BlobFetcher,
                        partial: Path) -> None:
        """Appends the server's bytes to `partial` from its current size on; a cut
        (Transient) resumes from where it stopped, up to FETCH_ATTEMPTS calls."""
        for tries in range(1, FETCH_ATTEMPTS + 1):
            offset = partial.stat().st_size if partial.exists() else 0
            try:
                await self._append(fetch(sha256, offset, job_id, attempt), partial)
                return
            except errors.Transient as exc:
                event(log, "input_fetch_cut", logging.WARNING, sha256=sha256[:12],
                      offset=offset, tries=tries, error=str(exc))
                if tries == FETCH_ATTEMPTS:
                    raise

    async def _append(self, chunks: AsyncIterator[bytes], partial: Path) -> None:
        handle = await asyncio.to_thread(open, partial, "ab")
        try:
            async for data in chunks:
                await asyncio.to_thread(handle.write, data)
                self.fetched_bytes += len(data)
                self._metrics.fetched_bytes.inc(len(data))
        finally:
            await asyncio.to_thread(handle.close)

    def _prune_blocking(self, in_use: frozenset[str]) -> None:
        entries: list[tuple[float, int, Path]] = []
        with contextlib.suppress(FileNotFoundError):
            for path in self._folder.iterdir():
                # A partial fetch counts too: one that no job resumes now would otherwise
                # stay for good (after a fetch gave up, or a job that was cancelled).
                content = path.stem if path.suffix == ".part" else path.name
                if content in in_use:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    st = path.stat()
                    entries.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self._cache_bytes:
                return
            path.unlink(missing_ok=True)
            total -= size


def _signature(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino
