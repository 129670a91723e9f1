"""An encrypted backup node read back with the archive key, as the ObjectSource that repair
and restore read any replica through: contents by their real SHA-256, library paths from the
sealed index.

The node answers by sealed names only. fetch(sha256) computes the content's keyed name, finds
the sealed object under it, and opens it segment by segment as it streams in (a segment that
does not authenticate stops the fetch: altered bytes or another key); the caller then checks
the SHA-256 of what was opened before anything is stored, as it does for any replica.
list_objects reads every sealed index object on the node once, and pages through their merged
entries in SHA-256 order. An index that does not open with this key means the key is not the
one these copies were sealed with: that refuses the restore before anything is stored."""

from __future__ import annotations

import bisect
import itertools
import logging
from collections.abc import AsyncIterator

from photonic import errors
from photonic.archive_key import ArchiveKey, load_key
from photonic.config import ServerConfig
from photonic.logfmt import event
from photonic.sealing import Opener
from photonic.server.archive_client import ObjectSource, ReplicaEntry
from photonic.server.replication.sealed import (
    INDEX_DIR,
    OBJECTS_DIR,
    SEALED_WATCH,
    Index,
    merge_indexes,
    name_from_rel,
    object_rel,
    read_index,
)
from photonic.tls import certificate_info

log = logging.getLogger("photonic.server.sealed_source")

PAGE = 1000
MAX_INDEX_SEALED_BYTES = 1 << 30


class SealedSource:
    """Wraps one node's ObjectSource; node_folder is this server's certificate id, under which
    the node files what this server sends."""

    def __init__(self, inner: ObjectSource, key: ArchiveKey, node_folder: str) -> None:
        self._inner = inner
        self._key = key
        self._folder = f"{node_folder.strip('/')}/{SEALED_WATCH}"
        self._node_folder = node_folder.strip("/")
        self._entries: list[ReplicaEntry] | None = None
        self._shas: list[str] = []
        self._sealed: dict[str, tuple[str, int]] = {}  # name -> (sealed sha256, sealed size)

    @property
    def name(self) -> str:
        return self._inner.name

    async def _everything(self, prefix: str) -> list[ReplicaEntry]:
        out: list[ReplicaEntry] = []
        after = ""
        while page := await self._inner.list_objects(after, PAGE, prefix):
            out += page
            after = page[-1].sha256
        return out

    async def _find(self, name: str) -> tuple[str, int]:
        if name not in self._sealed:
            folder = object_rel(name).rsplit("/", 1)[0]
            for entry in await self._everything(f"{self._folder}/{folder}"):
                for path in entry.library_paths:
                    if found := name_from_rel(path):
                        self._sealed[found] = (entry.sha256, entry.size)
        if name not in self._sealed:
            raise errors.NotFound(f"{self.name} holds no sealed copy under this archive key")
        return self._sealed[name]

    async def _open(self, sealed_sha: str, name: str) -> AsyncIterator[bytes]:
        opener = Opener(self._key.object_key(name))
        async for data in self._inner.fetch(sealed_sha, 0):
            for plain in opener.feed(data):
                yield plain
        opener.finish()

    async def fetch(self, sha256: str, offset: int) -> AsyncIterator[bytes]:
        """The content's bytes from offset on, each segment authenticated before it is
        given; IntegrityError names a segment that does not open."""
        name = self._key.name_of(sha256)
        sealed_sha, _size = await self._find(name)
        skip = offset
        async for plain in self._open(sealed_sha, name):
            if skip >= len(plain):
                skip -= len(plain)
                continue
            yield plain[skip:]
            skip = 0

    async def load(self) -> int:
        """Reads the node's sealed indexes (once); returns how many contents they name.
        AuthError when none opens with this key, NotFound when the node holds none."""
        if self._entries is not None:
            return len(self._entries)
        for entry in await self._everything(f"{self._folder}/{OBJECTS_DIR}"):
            for path in entry.library_paths:
                if name := name_from_rel(path):
                    self._sealed[name] = (entry.sha256, entry.size)
        indexes = await self._everything(f"{self._folder}/{INDEX_DIR}")
        if not indexes:
            raise errors.NotFound(
                f"{self.name} holds no sealed index under {self._folder}/: nothing was "
                "replicated to it encrypted from this server (is it an encrypted node of "
                "this server?)")
        read: list[Index] = []
        problems: list[str] = []
        for index in indexes:
            name = next((n for p in index.library_paths if (n := name_from_rel(p))), "")
            try:
                read.append(read_index(await self._read_index(index, name)))
            except (errors.IntegrityError, ValueError) as exc:
                problems.append(str(exc))
        merged = merge_indexes(read)
        opened = len(read)
        if not opened:
            raise errors.AuthError(
                f"the archive key {self._key.fingerprint} does not open the sealed index on "
                f"{self.name} ({problems[0]}): these copies were sealed with another key. "
                "Restore needs the key file this server used (security.archive_key_path); "
                "nothing was restored")
        if problems:
            event(log, "sealed_index_unreadable", logging.WARNING, node=self.name,
                  unreadable=len(problems), opened=opened, error=problems[0])
        self._entries = [
            ReplicaEntry(sha, size, tuple(f"{self._node_folder}/{p}" for p in paths))
            for sha, (size, paths) in sorted(merged.items())]
        self._shas = [e.sha256 for e in self._entries]
        return len(self._entries)

    async def _read_index(self, index: ReplicaEntry, name: str) -> bytes:
        if not name or index.size > MAX_INDEX_SEALED_BYTES:
            raise ValueError("not a sealed index object")
        parts: list[bytes] = []
        async for plain in self._open(index.sha256, name):
            parts.append(plain)
        return b"".join(parts)

    async def list_objects(self, after_sha256: str, limit: int,
                           library_prefix: str) -> list[ReplicaEntry]:
        """A page of the indexed contents after after_sha256, with their paths under
        library_prefix (relative to the node's library, as for a plain node)."""
        await self.load()
        assert self._entries is not None
        prefix = library_prefix.strip("/") + "/" if library_prefix.strip("/") else ""
        out: list[ReplicaEntry] = []
        start = bisect.bisect_right(self._shas, after_sha256)
        for entry in itertools.islice(self._entries, start, None):
            paths = tuple(p for p in entry.library_paths if p.startswith(prefix))
            if paths:
                out.append(ReplicaEntry(entry.sha256, entry.size, paths))
                if len(out) >= max(1, limit):
                    break
        return out

    async def close(self) -> None:
        await self._inner.close()


def sealed_reader(config: ServerConfig, inner: ObjectSource) -> SealedSource:
    """An encrypted backup node of this server, read with its archive key."""
    if config.security.archive_key_path is None:
        raise errors.InvalidInput("no security.archive_key_path: not a server config")
    return SealedSource(inner, load_key(config.security.archive_key_path),
                        certificate_info(config.security.cert_path).subject_cn)
