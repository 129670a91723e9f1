"""Whether a stored object may be trusted: the check behind every HAVE and every verify run.

An object in objects/ is trusted without reading it only when the catalog records that its
bytes hashed to its name (at commit, at an earlier check, by `photonic verify`) and its size
and mtime are what they were then. Anything else (no record, a size or mtime that moved: a
truncation, a write through a library link, a disk that lost blocks) is re-hashed before it
is trusted; an object that fails is moved to quarantine/, so the next upload of that content
stores it afresh instead of being told HAVE. Bit rot that leaves size and mtime alone is found
by a verify run, which re-hashes regardless."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from photonic.logfmt import event
from photonic.server.catalog import Catalog
from photonic.server.storage.blobs import BlobStore, ObjectCheck
from photonic.server.storage.local import LocalBlobStore
from photonic.server.store import ContentStore

log = logging.getLogger("photonic.server.verification")


@dataclass
class TrustReport:
    """What a trust check found: objects that may be answered HAVE, and those quarantined."""

    trusted: set[str] = field(default_factory=set)
    unrepaired: set[str] = field(default_factory=set)
    """Contents with a quarantined copy whose library entries still wait for a repair."""
    rehashed: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # (sha256, reason)


def damage(check: ObjectCheck, expected_size: int) -> str:
    """Why a re-hashed object is not its content, in words for logs and the audit; '' if it is."""
    if check.size < 0:
        return "the object is missing"
    if check.size != expected_size:
        return f"the object holds {check.size} bytes, not {expected_size}"
    if not check.intact:
        return "the object's bytes no longer hash to its name"
    return ""


class ObjectVerifier:
    """Trust checks and re-hashes of stored objects; blocking, called from worker threads."""

    def __init__(self, store: BlobStore | ContentStore, catalog: Catalog) -> None:
        """store: a ContentStore is read through its LocalBlobStore."""
        self._store = LocalBlobStore(store) if isinstance(store, ContentStore) else store
        self._catalog = catalog

    def trusted(self, wanted: Mapping[str, int]) -> TrustReport:
        """Which of these contents (sha256 -> the size the agent declared) the store holds
        intact. Cheap for verified, unchanged objects (one stat each, one catalog query for
        all); others are re-hashed, and quarantined when damaged. A store that holds no
        unrecorded objects is not asked about contents without a record."""
        report = TrustReport()
        records = self._catalog.verified_objects(list(wanted))
        looked_for = [sha for sha in wanted
                      if sha in records or self._store.unrecorded_objects]
        stats = self._store.stat_many(looked_for)
        fresh: list[tuple[str, int, int]] = []
        for sha in looked_for:
            declared = wanted[sha]
            record = records.get(sha)
            st = stats[sha]
            if st is None:
                continue
            if (record is not None and st.size == record.size
                    and st.mtime_ns == record.mtime_ns):
                if declared == st.size:
                    report.trusted.add(sha)
                continue
            report.rehashed += 1
            # Without a record only the bytes can judge: a size a client declares never
            # condemns an object (a lying manifest must not get good bytes quarantined).
            check = self._store.check(sha)
            problem = damage(check, record.size if record is not None else check.size)
            if problem:
                if self.quarantine(sha, problem):
                    report.quarantined.append((sha, problem))
                continue
            fresh.append((sha, check.size, check.mtime_ns))
            if declared == check.size:
                report.trusted.add(sha)
        self._catalog.record_verified(fresh)
        report.unrepaired = self._catalog.open_quarantine_among(list(wanted))
        return report

    def verify(self, sha256: str, expected_size: int) -> str:
        """Re-hashes one object whatever its record says (a scrub); records the result.
        Returns '' when intact, else why it was quarantined."""
        check = self._store.check(sha256)
        problem = damage(check, expected_size)
        if problem:
            self.quarantine(sha256, problem)
            return problem
        self._catalog.record_verified([(sha256, check.size, check.mtime_ns)])
        return ""

    def quarantine(self, sha256: str, reason: str) -> bool:
        """Moves a damaged object aside and records where; False when it was already gone."""
        moved = self._store.quarantine(sha256)
        if moved is None:
            return False
        self._catalog.record_quarantine(sha256, moved, reason)
        event(log, "object_quarantined", logging.ERROR, sha256=sha256[:16], reason=reason,
              file=moved)
        return True

    def describe(self, sha256: str, problem: str) -> str:
        """problem, with where the damaged bytes went and what repairs the photo."""
        moved = self._catalog.open_quarantine(sha256)
        if not moved:
            return problem
        return (f"{problem}; quarantined as {moved[-1]}, stored again when an agent next "
                "sends this photo")
