"""What an encrypted backup node is sent instead of the primary's objects and names.

The node sees one watch, `sealed`, of objects named by keyed hashes: a photo's content is
sealed (photonic.sealing) under its name HMAC(name key, SHA-256) and offered as
`o/<n[0:2]>/<n[2:4]>/<n>` with the SHA-256 of the sealed bytes as its manifest hash, so the
node verifies it before acknowledging like any upload and its scrub re-hashes it like any
object; no plaintext hash, EXIF, mtime, library path or version chain travels. The library
paths come back only with the key: a sealed index object (`i/<n>`, JSON compressed then
sealed) maps each name to the photo's SHA-256, size and library paths as they are when it is
sent (a later index's paths of a content replace an earlier one's). A loop sends the whole
index of what the node confirmed once per start, then what was confirmed since, so the
indexes on a node only grow by what changed (restore merges them all).

Sealing streams into a spool under the store's partial/ (one batch, bounded) that is emptied
after each exchange and at start: a sealed copy is never trusted across a crash; re-sealing
gives the same bytes, so the node's partial upload resumes all the same."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from photonic.archive_key import ArchiveKey
from photonic.sealing import seal_bytes, seal_file

SEALED_WATCH = "sealed"
OBJECTS_DIR = "o"
INDEX_DIR = "i"
INDEX_FORMAT = 1
MAX_INDEX_BYTES = 1 << 30
"""An index object larger than this once inflated is refused (a hostile node's zip bomb)."""


def object_rel(name: str) -> str:
    return f"{OBJECTS_DIR}/{name[:2]}/{name[2:4]}/{name}"


def index_rel(name: str) -> str:
    return f"{INDEX_DIR}/{name}"


def name_from_rel(rel: str) -> str:
    """The keyed name at the end of a sealed path ('' for a path that is not one)."""
    name = rel.rsplit("/", 1)[-1]
    return name if len(name) == 64 and all(c in "0123456789abcdef" for c in name) else ""


@dataclass(frozen=True)
class Spooled:
    """A sealed object ready to send: where it is, its path on the node, its sealed hash."""

    rel: str
    path: Path
    sha256: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class IndexEntry:
    name: str
    sha256: str
    size: int
    paths: tuple[str, ...]
    """Library paths relative to the primary's library (`<agent>/<watch>/<path>`)."""


class SealedSpool:
    """Blocking; one per encrypted node: `<partial>/sealed/<node>/<rel>`."""

    def __init__(self, root: Path, key: ArchiveKey) -> None:
        self.root = root
        self._key = key

    def name_of(self, sha256: str) -> str:
        return self._key.name_of(sha256)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _write(self, rel: str, write: Callable[[BinaryIO], str]) -> Spooled:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as out:
            digest = write(out)
        os.replace(tmp, path)
        st = path.stat()
        return Spooled(rel, path, digest, st.st_size, st.st_mtime_ns)

    def seal_object(self, source: Path, sha256: str, size: int) -> Spooled:
        """IntegrityError when the stored object no longer hashes to sha256: damaged bytes
        are never sealed (the scrub repairs them first)."""
        name = self._key.name_of(sha256)
        key = self._key.object_key(name)
        return self._write(object_rel(name),
                           lambda out: seal_file(source, size, sha256, key, out).sha256)

    def seal_index(self, entries: Iterable[IndexEntry], primary: str) -> Spooled:
        payload = index_payload(entries, primary)
        name = self._key.name_of_text("index:" + hashlib.sha256(payload).hexdigest())
        sealed = seal_bytes(payload, self._key.object_key(name))

        def write(out: BinaryIO) -> str:
            out.write(sealed)
            return hashlib.sha256(sealed).hexdigest()

        return self._write(index_rel(name), write)

    def remove(self, items: Sequence[Spooled]) -> None:
        for item in items:
            item.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Index:
    created_ms: int
    """Indexes are read oldest first: a later one's paths of a content replace an earlier
    one's (an older version's file is renamed `name.vN.ext` when a new version arrives)."""
    entries: list[IndexEntry]


def index_payload(entries: Iterable[IndexEntry], primary: str) -> bytes:
    doc = {"format": INDEX_FORMAT, "primary": primary, "created_ms": int(time.time() * 1000),
           "objects": [{"name": e.name, "sha256": e.sha256, "size": e.size,
                        "paths": list(e.paths)} for e in entries]}
    return zlib.compress(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode(), 6)


def read_index(payload: bytes) -> Index:
    """The entries of an opened index object; ValueError when it is not one."""
    inflater = zlib.decompressobj()
    text = inflater.decompress(payload, MAX_INDEX_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError("the index inflates beyond its limit")
    doc = json.loads(text)
    if not isinstance(doc, Mapping) or doc.get("format") != INDEX_FORMAT:
        raise ValueError("not an index of a format this version reads")
    return Index(int(doc.get("created_ms", 0)), [
        IndexEntry(str(o["name"]), str(o["sha256"]), int(o["size"]),
                   tuple(str(p) for p in o["paths"])) for o in doc["objects"]])


def merge_indexes(indexes: Iterable[Index]) -> dict[str, tuple[int, tuple[str, ...]]]:
    """{sha256: (size, library paths)}: oldest first, a later index's entry replaces."""
    merged: dict[str, tuple[int, tuple[str, ...]]] = {}
    for index in sorted(indexes, key=lambda i: i.created_ms):
        for e in index.entries:
            merged[e.sha256] = (e.size, e.paths)
    return merged
