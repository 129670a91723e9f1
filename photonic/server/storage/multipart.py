"""The multipart ledger: which S3 multipart upload holds each content's bytes so far, and its
completed parts. It lives in the catalog (catalog_multipart.py for SQLite), not in a server's
memory, so another server, or this one after a restart, resumes where the last part ended."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class MultipartPart:
    number: int
    etag: str
    size: int


@dataclass(frozen=True)
class MultipartState:
    """One upload in progress, as the ledger holds it."""

    sha256: str
    size: int
    staging_key: str
    upload_id: str
    created_ms: int
    parts: tuple[MultipartPart, ...]

    @property
    def durable_offset(self) -> int:
        """Where a resume starts: the end of the last completed part."""
        return sum(p.size for p in self.parts)


class MultipartLedger(Protocol):
    """Each call is its own durable transaction."""

    def multipart_of(self, sha256: str) -> MultipartState | None: ...

    def multipart_offsets(self, shas: Sequence[str]) -> dict[str, int]:
        """The durable offset of each content with an upload in progress."""
        ...

    def begin_multipart(self, sha256: str, size: int, staging_key: str, upload_id: str
                        ) -> None:
        """Records a new upload of this content, replacing any earlier one (which the caller
        has aborted)."""
        ...

    def add_multipart_part(self, sha256: str, upload_id: str, part: MultipartPart) -> bool:
        """Records a completed part; False when the content's upload is no longer upload_id
        (superseded meanwhile), and nothing is recorded."""
        ...

    def end_multipart(self, sha256: str, upload_id: str) -> None:
        """Forgets the upload (completed or aborted); another upload since is left alone."""
        ...

    def multipart_contents(self) -> list[str]:
        """The SHA-256 of every content with an upload in the ledger."""
        ...

    def multipart_upload_ids(self) -> set[str]:
        """Every upload id the ledger holds: an S3 upload not among them is an orphan."""
        ...
