"""Opens a SQLite database in WAL mode and applies its numbered .sql migrations in order."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photonic.errors import StorageFull

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


def open_database(
    path: Path, migrations_package: str, *, read_only: bool = False
) -> sqlite3.Connection:
    """A connection with WAL, foreign keys and FULL sync, its schema migrated to the newest version.

    FULL sync makes every commit durable before it returns: a commit is what lets the server
    acknowledge a photo, so it must survive power loss, not just a process crash (on macOS,
    with F_FULLFSYNC, which flushes the drive's own cache too).
    """
    if read_only:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    make_private(path)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    # On macOS a plain fsync leaves the commit in the drive's cache; these make SQLite use
    # F_FULLFSYNC for commits and checkpoints. Other platforms ignore them.
    conn.execute("PRAGMA fullfsync = ON")
    conn.execute("PRAGMA checkpoint_fullfsync = ON")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    _migrate(conn, migrations_package)
    return conn


PRIVATE_FILE_MODE = 0o600
_SIDE_FILES = ("-wal", "-shm", "-journal")


def make_private(path: Path) -> None:
    """Creates the database file 0600 (whatever the umask) and takes an existing one and its
    side files to 0600: it holds every path and hash the program knows. SQLite creates its
    -wal and -shm files with the database file's permissions, so those follow."""
    # An existing file is never opened here: closing any descriptor of a file drops every
    # POSIX lock this process holds on it, those of a connection already open to it included
    # (a second connection to the catalog in the same server); another process's reader could
    # then take the file for unused, checkpoint and delete the WAL under the live connection.
    try:
        os.chmod(path, PRIVATE_FILE_MODE)
    except FileNotFoundError:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL
                         | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE_MODE)
        except FileExistsError:  # created meanwhile by another opener
            os.chmod(path, PRIVATE_FILE_MODE)
        else:
            try:
                os.fchmod(fd, PRIVATE_FILE_MODE)
            finally:
                os.close(fd)
    for suffix in _SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", PRIVATE_FILE_MODE)


def _migrate(conn: sqlite3.Connection, package: str) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    current = int(row[0] or 0)
    scripts = sorted(
        (int(entry.name.split("_", 1)[0]), entry)
        for entry in _package_files(package)
        if entry.name.endswith(".sql") and entry.name[:3].isdigit()
    )
    for number, entry in scripts:
        if number <= current:
            continue
        sql = entry.read_text(encoding="utf-8")
        # executescript commits implicitly, so the version row goes in the same script.
        conn.executescript(
            f"BEGIN;\n{sql}\nINSERT INTO schema_version (version) VALUES ({number});\nCOMMIT;"
        )


def _package_files(package: str) -> list[Traversable]:
    """The files of a package. A package on disk (as pip installs photonic) is listed with
    os.scandir: importlib.resources, which also reads zipped packages, costs 3-7 ms of imports
    (zipfile, tempfile, random) at every start of the agent and the server (issue 16)."""
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if len(folders) == 1 and os.path.isdir(folders[0]):
        with os.scandir(folders[0]) as entries:
            return [Path(e.path) for e in entries if e.is_file()]
    from importlib import resources

    return list(resources.files(package).iterdir())


@contextmanager
def full_disk_as_storage_full(what: str) -> Iterator[None]:
    """Turns SQLite's "database or disk is full" into StorageFull, so a full disk pauses
    intake with a clear status instead of surfacing as an unexpected internal error."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode != sqlite3.SQLITE_FULL:
            raise
        raise StorageFull(f"{what}: the disk is full; nothing was recorded, and the same "
                          "work is retried once space is freed") from exc


@contextmanager
def transaction(conn: sqlite3.Connection, lock: threading.Lock, what: str, *,
                durable: bool = True) -> Iterator[sqlite3.Connection]:
    """One serialized write transaction on conn; a full disk raises StorageFull.

    durable=False commits with synchronous=NORMAL, for bookkeeping whose loss on power failure
    costs work (a rehash), never a photo; the next durable commit syncs those frames anyway."""
    with lock, full_disk_as_storage_full(what):
        if not durable:
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full) can leave the transaction open; close it, or every
            # later BEGIN would fail too.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            if not durable:
                conn.execute("PRAGMA synchronous = FULL")


class LockedDatabase:
    """One migrated SQLite connection that worker threads share behind one lock: reads go
    through _all, writes through _tx (a serialized, durable transaction). `what` names the
    database in a full-disk refusal."""

    def __init__(self, path: Path, migrations_package: str, what: str) -> None:
        self._conn = open_database(path, migrations_package)
        self._lock = threading.Lock()
        self._what = what

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _all(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())

    def _tx(self, *, durable: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._conn, self._lock, self._what, durable=durable)
