"""`photonic restore`: pulls the objects another server holds (an archive node) back onto this
one, a new or repaired primary. Each object is fetched, verified and stored through the repair
path (repair.ReplicaFetcher), then linked at its library paths; a path this catalog does not
know is recorded the way a sync records it (Library.record_many), with its EXIF read from the
restored bytes. Re-running skips what is present and intact, so a cut restore resumes.

Versions: the archive lists each library path of a content; a path this catalog lacks is
recorded as a photo of its own (`name.v1.ext` becomes a path of that name), so every byte and
every path comes back, while the version chain of a lost catalog does not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from photonic import errors
from photonic.media.exif import read_exif_summary
from photonic.models import ConflictPolicy, ContentHash, ManifestEntry
from photonic.paths import safe_relative_path
from photonic.server.archive_client import ObjectSource, ReplicaEntry
from photonic.server.catalog import Catalog
from photonic.server.library import Library
from photonic.server.repair import ReplicaFetcher
from photonic.server.store import ContentStore
from photonic.server.verification import ObjectVerifier

PAGE = 500
PROGRESS_EVERY_S = 5.0
LIBRARY = "library/"


@dataclass
class RestoreReport:
    objects: int = 0
    fetched: int = 0
    present: int = 0  # already held intact: skipped
    bytes_fetched: int = 0
    paths_linked: int = 0  # known paths linked to their object again
    paths_recorded: int = 0  # paths this catalog did not know, recorded
    failed: list[tuple[str, str]] = field(default_factory=list)  # (sha256 or path, why)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_json(self) -> dict[str, object]:
        return {"objects": self.objects, "fetched": self.fetched, "present": self.present,
                "bytes_fetched": self.bytes_fetched, "paths_linked": self.paths_linked,
                "paths_recorded": self.paths_recorded, "seconds": round(self.seconds, 3),
                "failed": [{"item": item, "reason": why} for item, why in self.failed],
                "ok": self.ok}


class Restorer:
    def __init__(self, source: ObjectSource, store: ContentStore, catalog: Catalog,
                 library: Library, *, node_folder: str = "",
                 progress: Callable[[RestoreReport], None] = lambda _r: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._fetcher = ReplicaFetcher(store, [source])
        self._store = store
        self._catalog = catalog
        self._library = library
        self._verifier = ObjectVerifier(store, catalog)
        self._progress = progress
        self._clock = clock
        self._node_folder = node_folder.strip("/")
        """The folder the source files this server's library under (an archive node files a
        primary's photos under the primary's certificate id); stripped from its paths."""

    async def run(self, library_prefix: str = "") -> RestoreReport:
        """Every object the source holds of this server's library (under library_prefix,
        relative to this server's library, when given)."""
        library_prefix = "/".join(p for p in (self._node_folder, library_prefix.strip("/")) if p)
        report = RestoreReport()
        started = self._clock()
        next_line = started + PROGRESS_EVERY_S
        after = ""
        while True:
            page = await self._source.list_objects(after, PAGE, library_prefix)
            if not page:
                break
            for entry in page:
                await self._restore(entry, report)
                if self._clock() >= next_line:
                    next_line = self._clock() + PROGRESS_EVERY_S
                    self._progress(report)
            after = page[-1].sha256
        report.seconds = self._clock() - started
        return report

    async def _restore(self, entry: ReplicaEntry, report: RestoreReport) -> None:
        report.objects += 1
        trust = await asyncio.to_thread(self._verifier.trusted, {entry.sha256: entry.size})
        if entry.sha256 in trust.trusted:
            report.present += 1
        else:
            fetched = await self._fetcher.fetch(entry.sha256, entry.size)
            if not fetched.ok:
                report.failed.append((entry.sha256, "; ".join(fetched.problems)))
                return
            report.fetched += 1
            report.bytes_fetched += entry.size
        for rel in entry.library_paths:
            try:
                linked = await asyncio.to_thread(self._place, entry, rel)
            except errors.PhotonicError as exc:
                report.failed.append((rel, str(exc)))
                continue
            if linked:
                report.paths_linked += 1
            else:
                report.paths_recorded += 1

    def _place(self, entry: ReplicaEntry, rel: str) -> bool:
        """Links a known library path to its object (True), or records an unknown one
        (False). Blocking."""
        if self._node_folder:
            head, _, rel = rel.partition("/")
            if head != self._node_folder:
                raise errors.InvalidInput(f"{head}/{rel} is not under {self._node_folder}/")
        path = safe_relative_path(rel)
        if len(path.parts) < 3:
            raise errors.InvalidInput(f"library path {rel!r} names no agent, watch and file")
        stored = LIBRARY + str(path)
        if stored in self._catalog.library_paths_of(entry.sha256):
            library_file = f"{self._store.root}/{stored}"
            if not self._store.holds(library_file, entry.sha256):
                self._store.link(entry.sha256, library_file, sync=True)
            self._catalog.close_quarantine(entry.sha256)
            return True
        agent, watch, *rest = path.parts
        exif = read_exif_summary(self._store.object_path(entry.sha256))
        manifest = ManifestEntry(sha256=ContentHash(entry.sha256), size=entry.size,
                                 watch_name=watch, relative_path="/".join(rest), exif=exif)
        stored_st = self._store.stat_object(entry.sha256)
        check = {entry.sha256: (stored_st.st_size, stored_st.st_mtime_ns)} if stored_st else {}
        [result] = self._library.record_many(agent, [(manifest, PurePosixPath(*rest))],
                                             ConflictPolicy.SERVER_WINS, check)
        if isinstance(result, errors.Unstorable):
            raise result
        return False

    async def close(self) -> None:
        await self._fetcher.close()
