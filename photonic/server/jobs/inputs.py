"""Turns what a submitter names (photo hashes, library paths, a folder, a shoot) into the
photos a job runs on, each with its library path, size and pixel count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from photonic import errors
from photonic.jobs_model import JobRequest
from photonic.models import ExifSummary, is_content_hash
from photonic.server.catalog import HeadPhoto, LocationHead

LIBRARY_PREFIX = "library/"


@dataclass(frozen=True)
class JobInput:
    sha256: str
    library_path: str  # "<agent>/<watch>/<path>", or "" when the photo has none
    size: int
    pixels: int


class InputCatalog(Protocol):
    def get_head(self, agent_id: str, watch_name: str, rel_path: str) -> LocationHead | None: ...
    def heads_beneath(self, agent_id: str, watch_name: str, folder: str, limit: int
                      ) -> list[HeadPhoto]: ...
    def photo_meta(self, sha256: str) -> tuple[int, ExifSummary]: ...
    def library_paths_of(self, sha256: str) -> list[str]: ...


def split_library_path(text: str, what: str) -> tuple[str, str, str]:
    """`<agent>/<watch>/<path>` -> (agent, watch, path); the path may be '' for a folder."""
    parts = text.strip().strip("/").split("/", 2)
    if len(parts) < 2 or not parts[0] or not parts[1] or ".." in parts:
        raise errors.InvalidInput(f"{what} {text!r} is not written as the library shows it: "
                                  "<agent>/<watch>/<relative path>")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


class InputResolver:
    def __init__(self, catalog: InputCatalog, *, max_inputs: int, shoot_gap_ms: int) -> None:
        self._catalog = catalog
        self._max = max_inputs
        self._shoot_gap_ms = shoot_gap_ms

    def resolve(self, r: JobRequest) -> list[JobInput]:
        """Blocking (catalog reads). Raises InvalidInput for a request that names nothing or
        more than one kind of input, NotFound for a photo the server does not hold."""
        named = [bool(r.input_sha256), bool(r.library_paths), bool(r.library_folder),
                 bool(r.shoot_of)]
        if sum(named) != 1:
            raise errors.InvalidInput("name the input once: photo hashes, library paths, a "
                                      "library folder or a shoot")
        if r.input_sha256:
            return [self._by_hash(sha) for sha in self._capped(r.input_sha256)]
        if r.library_paths:
            return [self._by_path(p) for p in self._capped(r.library_paths)]
        if r.library_folder:
            return self._folder(r.library_folder)
        return self._shoot(r.shoot_of)

    def _capped(self, items: Sequence[str]) -> Sequence[str]:
        if len(items) > self._max:
            raise errors.InvalidInput(f"a submit may name at most {self._max} photos")
        return items

    def _by_hash(self, sha: str) -> JobInput:
        if not is_content_hash(sha):
            raise errors.InvalidInput(f"{sha!r} is not a SHA-256 (64 lowercase hex digits)")
        size, exif = self._catalog.photo_meta(sha)
        paths = self._catalog.library_paths_of(sha)
        if not paths and size == 0:
            raise errors.NotFound(f"the server holds no photo {sha[:12]}…")
        path = paths[0].removeprefix(LIBRARY_PREFIX) if paths else ""
        return JobInput(sha, path, size, exif.width * exif.height)

    def _by_path(self, text: str) -> JobInput:
        agent, watch, rel = split_library_path(text, "library path")
        head = self._catalog.get_head(agent, watch, rel) if rel else None
        if head is None:
            raise errors.NotFound(f"no photo at library path {text!r}")
        size, exif = self._catalog.photo_meta(head.head_sha256)
        return JobInput(head.head_sha256, f"{agent}/{watch}/{rel}", size,
                        exif.width * exif.height)

    def _folder(self, text: str) -> list[JobInput]:
        agent, watch, folder = split_library_path(text, "library folder")
        heads = self._catalog.heads_beneath(agent, watch, folder, self._max + 1)
        if not heads:
            raise errors.NotFound(f"no photos in library folder {text!r}")
        if len(heads) > self._max:
            raise errors.InvalidInput(f"library folder {text!r} holds more than {self._max} "
                                      "photos; submit a smaller folder")
        return [_input(agent, watch, h) for h in heads]

    def _shoot(self, text: str) -> list[JobInput]:
        """The photos of the folder that holds this one whose capture times lie within the
        shoot gap of each other, as the agent batches a shoot."""
        agent, watch, rel = split_library_path(text, "library path")
        folder = rel.rpartition("/")[0]
        heads = [h for h in self._catalog.heads_beneath(agent, watch, folder, self._max + 1)
                 if h.rel_path.rpartition("/")[0] == folder]
        anchor = next((h for h in heads if h.rel_path == rel), None)
        if anchor is None:
            raise errors.NotFound(f"no photo at library path {text!r}")
        heads.sort(key=lambda h: (h.capture_time_ms, h.rel_path))
        at = heads.index(anchor)
        start, end = at, at
        while start > 0 and self._same_shoot(heads[start - 1], heads[start]):
            start -= 1
        while end + 1 < len(heads) and self._same_shoot(heads[end], heads[end + 1]):
            end += 1
        return [_input(agent, watch, h) for h in heads[start:end + 1]]

    def _same_shoot(self, a: HeadPhoto, b: HeadPhoto) -> bool:
        if not a.capture_time_ms or not b.capture_time_ms:
            return False
        return abs(b.capture_time_ms - a.capture_time_ms) <= self._shoot_gap_ms


def _input(agent: str, watch: str, h: HeadPhoto) -> JobInput:
    return JobInput(h.sha256, f"{agent}/{watch}/{h.rel_path}", h.size, h.pixels)
