"""`photonic verify`: re-hashes stored objects at a bounded rate, quarantines the damaged ones
and reports what it found, including library entries that no longer hold their photo.

It reads objects whatever their verification record says, so it finds what a HAVE's cheap
check cannot: bytes that rotted while size and mtime stayed the same. It is safe beside a
running server (SQLite in WAL mode; a quarantine is one rename, and a damaged object is
repaired by the next upload of its content). The archive issue's scrub grows from here."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from photonic.server.catalog import Catalog
from photonic.server.store import ContentStore
from photonic.server.verification import ObjectVerifier

PROGRESS_EVERY_S = 30.0


@dataclass
class DamagedObject:
    sha256: str
    reason: str
    library_paths: list[str]  # the photos it was serving (relative to the store root)


@dataclass
class VerifyReport:
    objects_checked: int = 0
    bytes_checked: int = 0
    seconds: float = 0.0
    damaged: list[DamagedObject] = field(default_factory=list)
    library_differs: list[str] = field(default_factory=list)
    """Library entries that are not a link to their photo's object: a person replaced the
    file (an editor saved over it) or removed it. Reported; the store itself is intact."""

    @property
    def intact(self) -> bool:
        return not self.damaged

    def as_json(self) -> dict[str, object]:
        return {
            "objects_checked": self.objects_checked, "bytes_checked": self.bytes_checked,
            "seconds": round(self.seconds, 3), "intact": self.intact,
            "damaged": [{"sha256": d.sha256, "reason": d.reason,
                         "library_paths": d.library_paths} for d in self.damaged],
            "library_differs": self.library_differs,
        }


class RatePacer:
    """Keeps a long read at or under a rate by sleeping between objects, so a scrub of
    terabytes never starves the server's own disk work."""

    def __init__(self, bytes_per_s: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._rate = bytes_per_s
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self._done = 0

    def spent(self, nbytes: int) -> None:
        """nbytes were just read; returns once reading them fits the rate."""
        self._done += nbytes
        if self._rate <= 0:
            return
        ahead_s = self._start + self._done / self._rate - self._clock()
        if ahead_s > 0:
            self._sleep(ahead_s)


class StoreScrub:
    """One verify run over the catalog's objects; blocking."""

    def __init__(self, store: ContentStore, catalog: Catalog, *, rate_bytes_per_s: int,
                 progress: Callable[[str], None] = lambda _line: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._catalog = catalog
        self._verifier = ObjectVerifier(store, catalog)
        self._rate = rate_bytes_per_s
        self._progress = progress
        self._clock = clock

    def run(self, since_ms: int = 0) -> VerifyReport:
        """Re-hashes every object stored at or after since_ms (0: all of them), then checks
        that each library entry of those photos is a link to its object."""
        report = VerifyReport()
        started = self._clock()
        pacer = RatePacer(self._rate, clock=self._clock)
        next_progress = started + PROGRESS_EVERY_S
        for sha256, size in self._catalog.stored_objects(since_ms):
            problem = self._verifier.verify(sha256, size)
            if problem:
                problem = self._verifier.describe(sha256, problem)
            report.objects_checked += 1
            if problem:
                report.damaged.append(DamagedObject(sha256, problem,
                                                    self._catalog.library_paths_of(sha256)))
            else:
                report.bytes_checked += size
                pacer.spent(size)
            if self._clock() >= next_progress:
                next_progress += PROGRESS_EVERY_S
                self._progress(f"verified {report.objects_checked} objects so far")
        self._catalog.make_durable()  # the records above, with one sync
        damaged = {d.sha256 for d in report.damaged}
        for library_path, sha256 in self._catalog.library_entries(since_ms):
            if sha256 in damaged:
                continue  # reported with its object
            if not self._store.holds(os.path.join(self._store.root, library_path), sha256):
                report.library_differs.append(library_path)
        report.seconds = self._clock() - started
        return report
