"""The full end-of-scenario verification: nothing lost, corrupted, duplicated or half-written.

Every photo in an agent's folders must be in the server library with the same SHA-256; every
object hashes to its name; nothing partial is visible in the library; catalog rows, library
files and objects agree (with storage.objects: s3://…, the library is the catalog: each head's
object in the bucket must hold the folder's bytes, and no library file may appear locally);
each path has exactly one head; no version is recorded twice; and the agent's queue is empty.
Files that are deliberately not synced (FIFOs, device files, symlinks
leaving the watch, unreadable files, ignored names) are excluded with their documented reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from photonic.agent.ignore import IgnoreRules
from tests.support.daemons import config_catalog_rows, sha256_of
from tests.support.stored import BucketPlace, bucket_in

AgentFolders = tuple[str, Mapping[str, Path]]
"""(agent id, {watch name: folder})."""

OUTSIDE_SYMLINK = "symlink leaves the watch folder: its target is not the agent's to sync"
SPECIAL_FILE = "FIFO, socket or device: never opened, never synced"
DIR_SYMLINK = "symlinked folder: not followed, so no cycle can trap the scan"
BROKEN_SYMLINK = "broken symlink: nothing to sync"
IGNORED = "matches the default ignore patterns (temporary, partial, OS litter)"
NOT_UTF8 = "name is not valid UTF-8: refused, the library only holds UTF-8 names"


@dataclass
class Verification:
    """What verify_all found; `problems` must be empty for a scenario to pass."""

    photos_verified: int = 0
    photos_lost: int = 0
    photos_corrupted: int = 0
    photos_duplicated: int = 0
    objects_checked: int = 0
    objects_mismatched: int = 0
    excluded: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < 200:
            self.problems.append(text)

    def summary(self) -> str:
        head = (f"verified={self.photos_verified} lost={self.photos_lost} "
                f"corrupted={self.photos_corrupted} duplicated={self.photos_duplicated} "
                f"objects={self.objects_checked} mismatched={self.objects_mismatched} "
                f"excluded={len(self.excluded)}")
        return "\n".join([head, *self.problems[:40]])


@dataclass(frozen=True)
class _Version:
    agent: str
    watch: str
    rel: str
    version: int
    sha256: str
    library_path: str
    mtime_ns: int
    is_head: bool


def verify_all(server_storage: Path, agents: Sequence[AgentFolders],
               agent_buffers: Sequence[Path], *,
               excluded: Mapping[str, str] | None = None,
               allow_queued: int = 0) -> Verification:
    """Checks the whole invariant; excluded maps "agent/watch/rel" to the documented reason a
    file is not expected on the server (e.g. permission denied)."""
    report = Verification()
    versions = _read_versions(server_storage)
    bucket = bucket_in(server_storage.parent / "server.yaml")
    heads = {(v.agent, v.watch, v.rel): v for v in versions if v.is_head}
    for agent_id, watches in agents:
        for watch, folder in watches.items():
            expected = _expected_files(folder, report, f"{agent_id}/{watch}", excluded or {})
            for rel, sha in expected.items():
                if bucket is None:
                    _check_photo(server_storage, agent_id, watch, rel, sha, heads, report)
                else:
                    _check_photo_in_bucket(bucket, f"{agent_id}/{watch}/{rel}", sha,
                                           heads.get((agent_id, watch, rel)), report)
    if bucket is None:
        _check_objects(server_storage, report)
        _check_catalog_against_library(server_storage, versions, report)
    else:
        held = _check_bucket_objects(bucket, report)
        _check_catalog_against_bucket(held, versions, report)
    _check_library_leftovers(server_storage, versions if bucket is None else [], report)
    for buffer in agent_buffers:
        _check_queue(buffer, allow_queued, report)
    return report


def _expected_files(folder: Path, report: Verification, prefix: str,
                    excluded: Mapping[str, str]) -> dict[str, str]:
    """{rel: sha256} of every file the agent must have synced from folder."""
    ignore = IgnoreRules(())
    root = os.path.realpath(folder)
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        rel_dir = os.path.relpath(dirpath, folder)
        for name in list(dirnames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                report.excluded[f"{prefix}/{rel}"] = DIR_SYMLINK
                dirnames.remove(name)
            elif ignore.is_ignored(rel, is_dir=True):
                dirnames.remove(name)
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            key = f"{prefix}/{rel}"
            reason = excluded.get(key) or _exclusion(os.path.join(dirpath, name), rel, root,
                                                     ignore)
            if reason:
                report.excluded[key] = reason
            else:
                out[rel] = sha256_of(Path(dirpath) / name)
    return out


def _exclusion(full: str, rel: str, root: str, ignore: IgnoreRules) -> str:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return NOT_UTF8
    if ignore.is_ignored(rel, is_dir=False):
        return IGNORED
    st = os.lstat(full)
    if stat.S_ISLNK(st.st_mode):
        target = os.path.realpath(full)
        if not (target == root or target.startswith(root.rstrip("/") + "/")):
            return OUTSIDE_SYMLINK
        if not os.path.exists(full):
            return BROKEN_SYMLINK
        if os.path.isdir(full):
            return DIR_SYMLINK
        st = os.stat(full)
    if not stat.S_ISREG(st.st_mode):
        return SPECIAL_FILE
    return ""


def _check_photo(storage: Path, agent: str, watch: str, rel: str, sha: str,
                 heads: Mapping[tuple[str, str, str], _Version], report: Verification) -> None:
    where = f"{agent}/{watch}/{rel}"
    head = heads.get((agent, watch, rel))
    library_file = storage / "library" / agent / watch / rel
    if head is None or not library_file.is_file():
        report.photos_lost += 1
        report.problem(f"LOST {where}: head={head is not None} file={library_file.exists()}")
        return
    if head.sha256 != sha or sha256_of(library_file) != sha:
        report.photos_corrupted += 1
        report.problem(f"CORRUPT {where}: folder {sha[:12]}, catalog {head.sha256[:12]}")
        return
    report.photos_verified += 1


def _check_photo_in_bucket(bucket: BucketPlace, where: str, sha: str, head: _Version | None,
                           report: Verification) -> None:
    data = None if head is None else bucket.read(head.sha256)
    if head is None or data is None:
        report.photos_lost += 1
        report.problem(f"LOST {where}: head={head is not None} object={data is not None}")
        return
    if head.sha256 != sha or hashlib.sha256(data).hexdigest() != sha:
        report.photos_corrupted += 1
        report.problem(f"CORRUPT {where}: folder {sha[:12]}, catalog {head.sha256[:12]}")
        return
    report.photos_verified += 1


def _check_bucket_objects(bucket: BucketPlace, report: Verification) -> set[str]:
    """Every object in the bucket hashes to its name; returns the names."""
    held = bucket.digests()
    for name in sorted(held):
        report.objects_checked += 1
        if hashlib.sha256(bucket.read(name) or b"").hexdigest() != name:
            report.objects_mismatched += 1
            report.photos_corrupted += 1
            report.problem(f"CORRUPT object {name[:12]} does not hash to its name")
    return held


def _check_catalog_against_bucket(held: set[str], versions: Sequence[_Version],
                                  report: Verification) -> None:
    """No duplicates, one head a path, and every version row's object in the bucket."""
    _check_rows(versions, report)
    for v in versions:
        if v.sha256 not in held:
            report.photos_lost += 1
            report.problem(f"LOST object {v.sha256[:12]} of catalog row {v.library_path}")


def _check_objects(storage: Path, report: Verification) -> None:
    for path in sorted((storage / "objects").rglob("*")):
        if not path.is_file():
            continue
        report.objects_checked += 1
        name = path.name
        if path.parent.name != name[2:4] or path.parent.parent.name != name[:2]:
            report.problem(f"misplaced object {path}")
        if sha256_of(path) != name:
            report.objects_mismatched += 1
            report.photos_corrupted += 1
            report.problem(f"CORRUPT object {name[:12]} does not hash to its name")


def _check_catalog_against_library(storage: Path, versions: Sequence[_Version],
                                   report: Verification) -> None:
    """Every version row points at a library file linked to its object; no duplicates."""
    _check_rows(versions, report)
    for v in versions:
        file = storage / v.library_path
        obj = storage / "objects" / v.sha256[:2] / v.sha256[2:4] / v.sha256
        if not obj.is_file():
            report.photos_lost += 1
            report.problem(f"LOST object {v.sha256[:12]} of catalog row {v.library_path}")
        elif not file.is_file() or not os.path.samefile(file, obj):
            report.problem(f"library file {v.library_path} is not the object {v.sha256[:12]}")


def _check_rows(versions: Sequence[_Version], report: Verification) -> None:
    """No version recorded twice, no library path in two rows, one head a path."""
    seen = Counter((v.agent, v.watch, v.rel, v.sha256, v.mtime_ns) for v in versions)
    for key, count in seen.items():
        if count > 1:
            report.photos_duplicated += count - 1
            report.problem(f"DUPLICATE version {key[:3]} sha {key[3][:12]} recorded {count}x")
    paths = Counter(v.library_path for v in versions)
    for path, count in paths.items():
        if count > 1:
            report.photos_duplicated += count - 1
            report.problem(f"DUPLICATE library path {path} in {count} version rows")
    heads = Counter((v.agent, v.watch, v.rel) for v in versions if v.is_head)
    locations = {(v.agent, v.watch, v.rel) for v in versions}
    for loc in locations:
        if heads[loc] != 1:
            report.problem(f"path {loc} has {heads[loc]} heads")


def _check_library_leftovers(storage: Path, versions: Sequence[_Version],
                             report: Verification) -> None:
    """Nothing in the library that the catalog does not know: no temporaries, no partials."""
    known = {v.library_path for v in versions}
    library = storage / "library"
    for path in library.rglob("*"):
        if path.is_dir():
            continue
        rel = path.relative_to(storage).as_posix()
        if path.name.startswith(".photonic-tmp") or path.name.endswith(".part"):
            report.problem(f"PARTIAL visible in the library: {rel}")
        elif rel not in known:
            report.problem(f"library file {rel} has no catalog row")


def _check_queue(buffer: Path, allow_queued: int, report: Verification) -> None:
    db = buffer / "agent.db"
    if not db.exists():
        report.problem(f"no agent database in {buffer}")
        return
    try:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            rows = conn.execute(
                "SELECT watch_name, rel_path, state, last_error FROM queue").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        # The agent made the file and has not created its tables yet (it is starting).
        report.problem(f"the agent database in {buffer} is not set up yet")
        return
    if len(rows) > allow_queued:
        for watch, rel, state, error in rows[:20]:
            report.problem(f"queue of {buffer.parent.name} still holds {watch}/{rel} "
                           f"({state}: {error})")


def _read_versions(server_storage: Path) -> list[_Version]:
    """Every version in the server's catalog, wherever its catalog.url keeps it (the test
    daemons' server.yaml sits beside the storage folder)."""
    rows = config_catalog_rows(
        server_storage.parent / "server.yaml", server_storage,
        "SELECT l.agent_id, l.watch_name, l.rel_path, v.version, v.sha256, v.library_path, "
        "v.mtime_ns, v.version = l.head_version FROM versions v "
        "JOIN locations l ON l.id = v.location_id")
    return [_Version(str(a), str(w), str(r), int(n), str(s), str(p), int(m), bool(h))
            for a, w, r, n, s, p, m, h in rows]
