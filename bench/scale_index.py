"""The scale set's first scan (bench.scan_probe, measured from outside) and the synced index
made from it once: the agent's own state database with every queued file acknowledged, cached
under bench/.data so an agent restart over a million files can be timed without syncing a
million files first (~45 minutes) on every run.

The cached index is only valid for the very files it was scanned from: a file's signature
holds its inode and ctime, so a regenerated set (same content, new inodes) or a hard link
made to it (a new ctime) would make the restart hash everything again. The key therefore
names the set's fingerprint, the identity of its manifest on disk (written last when the set
is generated), the agent's schema version and this module's version; a sample of files is
also compared with the index before it is trusted.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import os
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.datagen import DataSet
from bench.procstat import Background, ProcUsage, run_measured
from photonic.agent.signature import signature_of
from photonic.agent.statedb import AgentStateDB
from photonic.config import load_agent_config

log = logging.getLogger("bench.scale")

INDEX_VERSION = 1
"""Bump when the way the cached index is made changes: every cached index is then rebuilt."""
AGENT_MIGRATIONS = "photonic.agent.migrations"
_DB_NAME = "agent.db"
_META_NAME = "index.json"
_ACK_BATCH = 10_000
_SAMPLE_FILES = 200
_PROGRESS_EVERY_S = 30.0
_REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ScanRun:
    """One bench.scan_probe process: its JSON summary and how it was measured."""

    summary: dict[str, Any]
    wall_s: float
    usage: ProcUsage

    @property
    def files_hashed(self) -> int:
        return int(self.summary.get("files_hashed", 0))

    @property
    def files_queued(self) -> int:
        return int(self.summary.get("files_queued", 0))


def migration_version(package: str) -> int:
    """The newest numbered .sql migration of a package: the schema its databases end at."""
    numbers = [int(entry.name[:3]) for entry in importlib.resources.files(package).iterdir()
               if entry.name.endswith(".sql") and entry.name[:3].isdigit()]
    return max(numbers, default=0)


def set_identity(root: Path) -> dict[str, object]:
    """The set's fingerprint (what it was generated from) and its manifest's inode and mtime
    (which generation of it is on disk): a regenerated set has new inodes."""
    manifest = root / "manifest.json"
    st = manifest.stat()
    fingerprint = json.loads(manifest.read_text()).get("fingerprint", "")
    return {"fingerprint": fingerprint, "manifest_inode": st.st_ino,
            "manifest_mtime_ns": st.st_mtime_ns}


def index_key(root: Path, watch_name: str) -> str:
    """What a cached index was made from; any change makes a new one."""
    text = json.dumps([INDEX_VERSION, migration_version(AGENT_MIGRATIONS), watch_name,
                       str(root.resolve()), set_identity(root)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_folder(cache_dir: Path, dataset: DataSet) -> Path:
    """One cached index per set folder (the quick and the full set keep one each)."""
    return cache_dir / f"index-{dataset.root.name}"


def run_probe(config: Path, *, expected_files: int, timeout_s: float = 4 * 3600) -> ScanRun:
    """Runs the first scan as its own process, logging its progress from its database."""
    buffer_db = load_agent_config(config).buffer_path / _DB_NAME
    argv = [sys.executable, "-m", "bench.scan_probe", "--config", str(config)]
    with _ProgressLog(buffer_db, expected_files):
        result = run_measured(argv, timeout_s=timeout_s, cwd=_REPO)
    if result.returncode != 0:
        raise RuntimeError(f"bench.scan_probe exited {result.returncode}: "
                           f"{result.stderr[-3000:]}")
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"bench.scan_probe printed no JSON summary: {result.stdout!r}")
    return ScanRun(json.loads(lines[-1]), result.wall_s, result.usage)


class _ProgressLog(Background):
    """Logs how many files the probe has queued so far, every 30 s, from its database (a
    reader beside the writer, in WAL mode): a million files take minutes."""

    def __init__(self, db_path: Path, expected: int) -> None:
        super().__init__("scan-progress")
        self._db_path = db_path
        self._expected = expected

    def _run(self) -> None:
        started = time.perf_counter()
        while not self._stop.wait(_PROGRESS_EVERY_S):
            queued = _count(self._db_path, "SELECT COUNT(*) FROM queue")
            log.info("first scan: %s of %s files queued after %.0f s",
                     f"{queued:,}" if queued >= 0 else "?", f"{self._expected:,}",
                     time.perf_counter() - started)


def _count(db_path: Path, sql: str) -> int:
    """One count from a database another process writes; -1 when it cannot be read yet."""
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


def acknowledge_all(db_path: Path) -> int:
    """Releases every queued file through the agent's own ack path (mark_synced_many, as the
    sync service does on COMMITTED or HAVE): the index then records each file as synced.
    Returns how many were acknowledged."""
    db = AgentStateDB(db_path)
    done = 0
    started = time.perf_counter()
    try:
        while batch := db.pending(_ACK_BATCH):
            db.mark_synced_many([(f.id, f.sha256) for f in batch])
            done += len(batch)
            if done % 100_000 < _ACK_BATCH:
                log.info("synced index: %s files acknowledged after %.0f s", f"{done:,}",
                         time.perf_counter() - started)
    finally:
        db.close()  # the last connection: SQLite checkpoints the WAL into the file
    return done


def store_index(buffer_db: Path, dataset: DataSet, watch_name: str, cache_dir: Path) -> Path:
    """Acknowledges every file of a probe's database and keeps it as the set's cached index."""
    acknowledged = acknowledge_all(buffer_db)
    if acknowledged < dataset.count:  # the set's manifest.json is in the folder too
        raise RuntimeError(f"the first scan queued {acknowledged} of {dataset.count} files")
    folder = cache_folder(cache_dir, dataset)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copyfile(buffer_db, folder / _DB_NAME)
    meta = {"key": index_key(dataset.root, watch_name), "files": acknowledged}
    # The metadata goes last: an index interrupted half-way has none and is made again.
    (folder / _META_NAME).write_text(json.dumps(meta))
    return folder / _DB_NAME


def cached_index(dataset: DataSet, watch_name: str, cache_dir: Path) -> Path | None:
    """The set's cached index when its key matches and a sample of files still has the
    signatures it recorded; None when it must be made (again)."""
    folder = cache_folder(cache_dir, dataset)
    try:
        meta = json.loads((folder / _META_NAME).read_text())
    except (OSError, ValueError):
        return None
    path = folder / _DB_NAME
    if meta.get("key") != index_key(dataset.root, watch_name) or not path.exists():
        return None
    return path if sample_matches(path, dataset, watch_name) else None


def sample_matches(db_path: Path, dataset: DataSet, watch_name: str) -> bool:
    """Whether files spread over the set have the signatures the index holds for them."""
    step = max(1, dataset.count // _SAMPLE_FILES)
    sample = [rel for rel, _size in dataset.files[::step]]
    db = AgentStateDB(db_path, read_only=True)
    try:
        known = db.get_signatures(watch_name, sample)
    finally:
        db.close()
    for rel in sample:
        try:
            if known.get(rel) != signature_of(os.stat(dataset.root / rel)):
                return False
        except OSError:
            return False
    return True


def install_index(cached: Path, buffer_path: Path) -> None:
    """Copies the cached index into a fresh agent buffer folder, private as the agent makes it."""
    buffer_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = buffer_path / _DB_NAME
    shutil.copyfile(cached, target)
    target.chmod(0o600)
