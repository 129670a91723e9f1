"""What the dashboard shows beside one photo or one content: where it lives, its versions,
its EXIF (read from the stored bytes, with exposure, ISO and focal length that the catalog
does not keep), the jobs that took it as input and what they made."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

from photonic import errors
from photonic.jobs_model import Job, JobState
from photonic.media.exif_details import ExifDetails, read_exif_details
from photonic.server.catalog import LocationRow
from photonic.server.storage.blob_file import open_blob
from photonic.server.storage.blobs import BlobStore

MAX_JOBS = 100


@dataclass(frozen=True)
class VersionView:
    version: int
    sha256: str
    size: int
    committed_ms: int
    agent_id: str
    current: bool
    copies: int = 1
    """This server's store plus each backup node that confirmed holding the content."""


@dataclass(frozen=True)
class DerivedView:
    """An output of a completed job that took the photo as input."""

    sha256: str
    name: str
    library_path: str
    job_id: str
    kind: str


@dataclass(frozen=True)
class PhotoView:
    id: int
    library_path: str
    agent_id: str
    watch_name: str
    rel_path: str
    sha256: str
    size: int
    capture_time_ms: int
    exif: ExifDetails
    versions: tuple[VersionView, ...]
    jobs: tuple[Job, ...]
    derived: tuple[DerivedView, ...]
    copies: int = 1
    """Copies of the current version's content (see VersionView.copies)."""


@dataclass(frozen=True)
class ContentView:
    sha256: str
    size: int
    exif: ExifDetails


def location_id_of(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise errors.InvalidInput("a photo id is a number (the library listing's id)")
    return int(text)


def photo_view(row: LocationRow, exif: ExifDetails, jobs: list[Job],
               copies: Mapping[str, int] | None = None) -> PhotoView:
    """The view of a library path whose head's EXIF and jobs were read."""
    head = next((v for v in row.versions if v.version == row.head_version), None)
    if head is None:
        raise errors.NotFound(f"photo {row.location_id} has no current version")
    derived = tuple(DerivedView(o.sha256, o.name, o.library_path, str(j.job_id), j.kind)
                    for j in jobs if j.state is JobState.COMPLETED for o in j.outputs)
    counts = copies or {}
    versions = tuple(VersionView(v.version, v.sha256, v.size, v.created_ms, row.agent_id,
                                 v.version == row.head_version, counts.get(v.sha256, 1))
                     for v in row.versions)
    return PhotoView(row.location_id, f"{row.agent_id}/{row.watch_name}/{row.rel_path}",
                     row.agent_id, row.watch_name, row.rel_path, head.sha256, head.size,
                     head.capture_time_ms, exif, versions, tuple(jobs), derived,
                     counts.get(head.sha256, 1))


def read_exif_of(blobs: BlobStore, sha256: str) -> tuple[int, ExifDetails]:
    """(size, EXIF details) of a stored object. Blocking: call it from a thread."""
    with open_blob(blobs, sha256) as source:
        size = source.seek(0, io.SEEK_END)
        source.seek(0)
        return size, read_exif_details(source)
