"""Records paths for stored content: versions (`name.vN.ext`), conflicts and their policies.

Every method does blocking I/O (links, SQLite) and runs in a worker thread. Each step is
idempotent, so a crash between any two of them is repaired by the agent simply sending again.
Nothing is fsynced under the library lock: links and catalog rows are made durable afterwards
by a group sync shared with every other writer finishing at the same time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath

from photonic.errors import NotFound, Unstorable
from photonic.models import CommittedFile, ConflictPolicy, ContentHash, ManifestEntry
from photonic.paths import version_path
from photonic.server import faults
from photonic.server.catalog import Catalog, LocationHead, NewVersion, ObjectCheckRow
from photonic.server.catalog_writes import CatalogWrites
from photonic.server.durability import GroupSync
from photonic.server.fs_sync import FilesystemSync
from photonic.server.shared.library_lock import LibraryLock, LocalLibraryLock
from photonic.server.storage.tree import A_FILE_STANDS, A_FOLDER_STANDS, LibraryTree

RECORD_SLICE = 200
"""Paths record_many records under one hold of the library and one catalog transaction: a
commit (and its write-ahead-log frames) per slice, not per photo, while another stream's
commit waits at most one slice (about 9 ms on a 10M-photo PostgreSQL catalog, 10 on SQLite),
not a whole manifest. 100 before 2026-12 (about 6 ms a slice): twice the slices cost the
1,000-path manifest check over 10M photos about 5 ms on either engine (bench/README.md)."""


class Library:
    """The browsable tree `library/<agent>/<watch>/<path>` kept in step with the catalog."""

    def __init__(self, store: LibraryTree, catalog: Catalog,
                 filesystem: FilesystemSync | None = None,
                 lock: LibraryLock | None = None) -> None:
        """store: the local store's tree of links (a ContentStore), or a CatalogView (an S3
        store has no tree); filesystem: the group sync syncs the store's whole filesystem
        (fs_sync.py); lock: shared with other servers on one catalog; default, this
        process's own."""
        self._store = store
        self._catalog = catalog
        # One writer at a time per path: version numbering reads then writes, and version
        # names are chosen by looking at the folder. Fsyncs happen outside it, grouped.
        self._lock = lock or LocalLibraryLock()
        self._durability = GroupSync(catalog.make_durable, filesystem)

    @property
    def durability(self) -> GroupSync:
        """The group sync every change to the store and library waits on before its ack."""
        return self._durability

    def record_many(self, agent_id: str, items: Sequence[tuple[ManifestEntry, PurePosixPath]],
                    policy: ConflictPolicy,
                    verified: Mapping[str, ObjectCheckRow] | None = None
                    ) -> list[CommittedFile | Unstorable]:
        """Makes each entry's content visible at its path, following the conflict policy, and
        returns once all of it is durable, with everything noted on the group sync before (the
        store folder of content just committed, other writers' links and rows). A path the
        storage cannot hold gives its Unstorable in its place.

        The lock and one catalog transaction are taken per RECORD_SLICE items, so a long
        manifest of known photos does not stall other streams' commits for long; the one sync
        at the end covers them all. A crash before it completes
        is repaired: the agent got no acknowledgement and offers the files again, and a head
        whose link was lost is re-linked then.

        verified: (size, mtime_ns) of objects whose bytes were just found to hash to their
        name (content stored by this commit); recorded in the same catalog transaction as
        the version that names them, or on their own when no version is written."""
        mark = self._durability.mark()
        committed: list[CommittedFile | Unstorable] = []
        unrecorded = dict(verified or {})
        for start in range(0, len(items), RECORD_SLICE):
            batch = items[start:start + RECORD_SLICE]
            paths = ((agent_id, entry.watch_name, str(rel)) for entry, rel in batch)
            with self._lock.hold(paths):
                refused = self._refusals(agent_id, batch)
                with self._catalog.writing() as writes:
                    heads = _SliceHeads(writes.get_heads(
                        agent_id, [(entry.watch_name, str(rel)) for entry, rel in batch]))
                    for i, (entry, rel) in enumerate(batch):
                        try:
                            if i in refused:
                                raise refused[i]
                            committed.append(self._record(
                                writes, agent_id, entry, rel, policy,
                                unrecorded.pop(entry.sha256, None), heads))
                        except Unstorable as exc:  # that path only; the others are recorded
                            committed.append(exc)
        self._catalog.record_verified([(sha, *check) for sha, check in unrecorded.items()])
        self._durability.wait_durable(since=mark)
        return committed

    def _refusals(self, agent_id: str, batch: Sequence[tuple[ManifestEntry, PurePosixPath]]
                  ) -> dict[int, Unstorable]:
        """The items of batch whose path the tree cannot hold (LibraryTree.refusal: a catalog
        view asks the catalog, before its write transaction; a local tree answers at link),
        and those whose path is a file where an earlier item of the batch has a folder, or
        the other way round."""
        out: dict[int, Unstorable] = {}
        files: set[tuple[str, str]] = set()
        folders: set[tuple[str, str]] = set()
        for i, (entry, rel) in enumerate(batch):
            watch = entry.watch_name
            path = str(rel)
            parents = _parents(path)
            why = self._store.refusal(agent_id, watch, rel)
            if why is None and (watch, path) in folders:
                why = A_FOLDER_STANDS
            if why is None and any((watch, f) in files for f in parents):
                why = A_FILE_STANDS
            if why is not None:
                out[i] = Unstorable(f"the server cannot store a photo at this path: {why}; "
                                    "rename the file or its folder")
                continue
            files.add((watch, path))
            folders.update((watch, f) for f in parents)
        return out

    def repair_links(self, sha256: str) -> None:
        """After a quarantined content is stored again: every library entry of it that does
        not name the new object (it named the damaged one, or is gone) is linked to it; a
        file a person put at such a path is kept beside it (ContentStore.link). The folders
        are noted on the group sync, like every link, and made durable before any ack."""
        if not self._catalog.open_quarantine(sha256):
            return
        with self._lock.hold_all():
            for library_path in self._catalog.library_paths_of(sha256):
                library_file = self._store.absolute(library_path)
                if not self._store.holds(library_file, sha256):
                    self._link(sha256, library_file)
            self._catalog.close_quarantine(sha256)

    def _link(self, sha256: str, library_file: str) -> None:
        self._durability.note_dirs(self._store.link(sha256, library_file, sync=False))

    def _record(self, writes: CatalogWrites, agent_id: str, entry: ManifestEntry,
                rel: PurePosixPath, policy: ConflictPolicy,
                check: ObjectCheckRow | None, heads: _SliceHeads) -> CommittedFile:
        """writes: the catalog, or the transaction of record_many's slice (no Unstorable is
        raised once an item's rows are written, so an item that fails leaves none). heads:
        the slice's heads, read at once under the lock (a path met again reads its own)."""
        key = (entry.watch_name, str(rel))
        head = heads.take(key) if heads.fresh(key) else writes.get_head(agent_id, *key)
        plain = self._store.library_file(agent_id, entry.watch_name, rel)
        if head is None:
            self._link(entry.sha256, plain)
            recorded = self._commit(writes, agent_id, entry, rel, 1, plain, make_head=True,
                                    check=check, known_location=0)
            return self._committed(entry, 1, recorded)
        if head.head_sha256 == entry.sha256:
            if not self._store.holds(plain, entry.sha256):
                self._link(entry.sha256, plain)
            if check is not None:
                writes.record_verified([(entry.sha256, *check)])
            return self._committed(entry, head.head_version, self._store.relative(plain))
        retried = self._catalog_version_with(writes, head, entry)
        if retried is not None:
            return self._committed(entry, retried[0], retried[1], conflict=True)
        conflict = entry.base_sha256 != head.head_sha256
        if conflict and policy is ConflictPolicy.MANUAL:
            writes.park_conflict(agent_id, entry.watch_name, str(rel), head.head_sha256,
                                 entry.sha256, entry.size, entry.exif, entry.mtime_ns)
            return self._committed(entry, 0, self._store.relative(plain), conflict=True)
        if conflict and policy is ConflictPolicy.SERVER_WINS:
            version = head.max_version + 1
            side = self._free_version_file(agent_id, entry.watch_name, rel, version, entry.sha256)
            self._link(entry.sha256, side)
            recorded = self._commit(writes, agent_id, entry, rel, version, side,
                                    make_head=False, conflict_with=head.head_sha256,
                                    resolution="server_wins", check=check,
                                    known_location=head.location_id)
            return self._committed(entry, version, recorded, conflict=True)
        return self._new_head(writes, agent_id, entry, rel, head,
                              conflict_with=head.head_sha256 if conflict else None, check=check)

    def resolve(self, conflict_id: int, keep_incoming: bool) -> None:
        """Settles a parked conflict: the incoming version becomes head, or is kept beside it.
        The parked content is never dropped either way."""
        with self._lock.hold_all():
            row = next((c for c in self._catalog.open_conflicts(None) if c.id == conflict_id),
                       None)
            if row is None:
                raise NotFound(f"conflict {conflict_id} does not exist or is already resolved")
            mark = self._durability.mark()
            rel = PurePosixPath(row.rel_path)
            head = self._catalog.get_head(row.agent_id, row.watch_name, row.rel_path)
            assert head is not None
            size, exif = self._catalog.photo_meta(row.incoming_sha256)
            entry = ManifestEntry(sha256=ContentHash(row.incoming_sha256), size=size,
                                  watch_name=row.watch_name, relative_path=row.rel_path,
                                  exif=exif, mtime_ns=row.incoming_mtime_ns,
                                  base_sha256=head.head_sha256)
            if self._catalog_version_with(self._catalog, head, entry) is None:
                if keep_incoming:
                    self._new_head(self._catalog, row.agent_id, entry, rel, head,
                                   conflict_with=None)
                else:
                    version = head.max_version + 1
                    side = self._free_version_file(row.agent_id, row.watch_name, rel, version,
                                                   entry.sha256)
                    self._link(entry.sha256, side)
                    self._commit(self._catalog, row.agent_id, entry, rel, version, side,
                                 make_head=False)
            # The durable commit below also syncs the version rows written before it.
            self._catalog.close_conflict(conflict_id,
                                         "keep_incoming" if keep_incoming else "keep_server")
        self._durability.wait_durable(since=mark)

    def _new_head(self, writes: CatalogWrites, agent_id: str, entry: ManifestEntry,
                  rel: PurePosixPath, head: LocationHead, conflict_with: str | None,
                  check: ObjectCheckRow | None = None) -> CommittedFile:
        plain = self._store.library_file(agent_id, entry.watch_name, rel)
        old = self._free_version_file(agent_id, entry.watch_name, rel, head.head_version,
                                      ContentHash(head.head_sha256))
        self._link(head.head_sha256, old)
        self._link(entry.sha256, plain)
        version = head.max_version + 1
        recorded = self._commit(writes, agent_id, entry, rel, version, plain, make_head=True,
                                relocated=old, conflict_with=conflict_with,
                                resolution="auto" if conflict_with else None, check=check,
                                known_location=head.location_id)
        return self._committed(entry, version, recorded, conflict=conflict_with is not None)

    @staticmethod
    def _catalog_version_with(writes: CatalogWrites, head: LocationHead,
                              entry: ManifestEntry) -> tuple[int, str] | None:
        """A version already recorded for this exact file (same content and mtime): the agent
        is retrying after a lost acknowledgement, so nothing new is recorded."""
        return writes.find_version(head.location_id, entry.sha256, entry.mtime_ns)

    def _free_version_file(self, agent_id: str, watch: str, rel: PurePosixPath, version: int,
                           sha256: ContentHash) -> str:
        for attempt in range(1000):
            candidate = self._store.library_file(agent_id, watch,
                                                 version_path(rel, version, attempt))
            if not self._store.occupied(candidate) or self._store.holds(candidate, sha256):
                return candidate
        raise NotFound(f"no free version name for {rel}")

    def _commit(self, writes: CatalogWrites, agent_id: str, entry: ManifestEntry,
                rel: PurePosixPath, version: int, where: str, *, make_head: bool,
                relocated: str | None = None, conflict_with: str | None = None,
                resolution: str | None = None, check: ObjectCheckRow | None = None,
                known_location: int | None = None) -> str:
        """Records the version (and check, the object's verification, in the same
        transaction); returns its library path as recorded (relative to the root)."""
        faults.hit("after_library_link")
        library_path = self._store.relative(where)
        writes.commit_version(NewVersion(
            agent_id=agent_id, watch_name=entry.watch_name, rel_path=str(rel),
            sha256=entry.sha256, size=entry.size, exif=entry.exif, version=version,
            library_path=library_path, make_head=make_head, mtime_ns=entry.mtime_ns,
            incomplete=entry.incomplete,
            relocated_head_path=(self._store.relative(relocated) if relocated is not None
                                 else None),
            conflict_server_sha256=conflict_with, conflict_resolution=resolution,
            object_check=check, known_location=known_location,
        ), durable=False)
        return library_path

    @staticmethod
    def _committed(entry: ManifestEntry, version: int, library_path: str,
                   conflict: bool = False) -> CommittedFile:
        """library_path: relative to the store root, as the catalog holds it."""
        return CommittedFile(sha256=entry.sha256, watch_name=entry.watch_name,
                             relative_path=entry.relative_path, version=version,
                             conflict=conflict, library_path=library_path)


def _parents(path: str) -> list[str]:
    """PurePosixPath(path).parents as strings, for a normalised relative path (what
    safe_relative_path returns): a slice's paths check their clashes in string sets, not
    in path objects made per parent (10 us a path, a tenth of a stored manifest's
    recording on PostgreSQL)."""
    out = []
    while "/" in path:
        path = path.rpartition("/")[0]
        out.append(path)
    out.append(".")
    return out


class _SliceHeads:
    """A slice's heads as one get_heads read them; each path's answer is used once (a path
    that comes again in the slice reads the head its first occurrence left)."""

    def __init__(self, found: dict[tuple[str, str], LocationHead]) -> None:
        self._found = found
        self._used: set[tuple[str, str]] = set()

    def fresh(self, key: tuple[str, str]) -> bool:
        return key not in self._used

    def take(self, key: tuple[str, str]) -> LocationHead | None:
        self._used.add(key)
        return self._found.get(key)
