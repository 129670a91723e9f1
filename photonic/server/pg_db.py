"""PostgreSQL for the server's shared state (the job queue now, the catalog with the rest of
the scale-out work): connections, numbered migrations per package, and database failures as
photonic errors. psycopg enters photonic through this module only.

A migration is a numbered `.sql` file run in one transaction together with its row in
schema_version; servers starting at once take turns on an advisory lock, so each file runs
exactly once per database."""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.types.string import StrBinaryDumper, StrDumperUnknown

from photonic.errors import LimitExceeded, PhotonicError, Transient

PgConnection = psycopg.Connection[tuple[Any, ...]]
PgAsyncConnection = psycopg.AsyncConnection[tuple[Any, ...]]
Notify = psycopg.Notify
_BUSY = ("the server's database was busy with another server's work; nothing of this call "
         "was kept, and it may be tried again")
"""What a client is told of a lock or transaction conflict (the details, such as the
database's address, stay in the server's log)."""
_MIGRATION_RE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
CONNECT_TIMEOUT_S = 10


class DatabaseError(PhotonicError):
    """The database refused a statement: a bug or a schema out of step, not a passing fault."""


class _NulFreeText(StrDumperUnknown):
    """A str parameter as PostgreSQL text can hold it: text has no NUL (the statement would be
    refused, and a client's stray byte would fail its whole call), so each becomes U+FFFD, as
    SQLite's catalog keeps such text whole. Lookups by such a value simply find nothing."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(obj.replace("\x00", "\ufffd"))


class _NulFreeBinaryText(StrBinaryDumper):
    def dump(self, obj: str) -> Buffer | None:
        return super().dump(obj.replace("\x00", "\ufffd"))


def _nul_free(conn: PgConnection | PgAsyncConnection) -> None:
    conn.adapters.register_dumper(str, _NulFreeText)
    conn.adapters.register_dumper(str, _NulFreeBinaryText)


def connect(url: str) -> PgConnection:
    """An autocommit connection: every multi-statement unit opens its own transaction()."""
    with unreachable_as_transient(url):
        conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    _nul_free(conn)
    return conn


async def connect_async(url: str) -> PgAsyncConnection:
    with unreachable_as_transient(url):
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True,
                                                     connect_timeout=CONNECT_TIMEOUT_S)
    _nul_free(conn)
    return conn


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


@contextmanager
def unreachable_as_transient(url: str) -> Iterator[None]:
    """A lost or refused connection is Transient (the same call may succeed once the database
    is back), and so is a transaction PostgreSQL rolled back for crossing another's (deadlock,
    serialization failure); any other database error is a DatabaseError naming what was
    refused."""
    try:
        yield
    except psycopg.errors.LockNotAvailable as e:
        raise Transient(f"PostgreSQL at {safe_url(url)} did not grant a lock in time "
                        "(another server holds it); retry",
                        client_message=_BUSY) from e
    except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as e:
        raise Transient(f"PostgreSQL at {safe_url(url)} rolled back a transaction that "
                        "crossed another server's (a deadlock or serialization failure); "
                        "nothing of it was kept, and it may be tried again",
                        client_message=_BUSY) from e
    except psycopg.errors.OutOfMemory as e:  # SQLSTATE 53200: its lock table is full
        raise LimitExceeded("the server's database has no room for more locks now (too many "
                            "uploads are claimed at once); try again later") from e
    except psycopg.OperationalError as e:
        raise Transient(f"PostgreSQL at {safe_url(url)} is unreachable: "
                        f"{str(e).strip().splitlines()[0] if str(e).strip() else e!r}; "
                        "check that it runs and accepts this server",
                        client_message="the server's database is unreachable now; nothing "
                                       "of this call was kept, and it may be tried again "
                                       "later") from e
    except psycopg.Error as e:
        raise DatabaseError(f"PostgreSQL at {safe_url(url)} refused a statement: "
                            f"{str(e).strip()}",
                            client_message="the server's database refused this call; the "
                                           "server's log has the details") from e


def migrate(conn: PgConnection, package: str) -> int:
    """Runs the package's migrations this database has not seen; returns how many ran."""
    files = sorted((int(m.group(1)), entry.name)
                   for entry in importlib.resources.files(package).iterdir()
                   if (m := _MIGRATION_RE.match(entry.name)))
    lock_key = f"photonic migrations {package}"
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock_key,))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                     "package TEXT NOT NULL, version INTEGER NOT NULL, "
                     "applied_ms BIGINT NOT NULL, PRIMARY KEY (package, version))")
        done = {int(r[0]) for r in conn.execute(
            "SELECT version FROM schema_version WHERE package = %s", (package,))}
        ran = 0
        for version, name in files:
            if version in done:
                continue
            text = importlib.resources.files(package).joinpath(name).read_text("utf-8")
            with conn.transaction():
                conn.execute(sql.SQL(text))  # our own file
                conn.execute("INSERT INTO schema_version (package, version, applied_ms) "
                             "VALUES (%s, %s, (extract(epoch FROM now()) * 1000)::bigint)",
                             (package, version))
            ran += 1
        return ran
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock_key,))
