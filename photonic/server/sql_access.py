"""One way for a catalog mixin to run its statements on either engine: `_sql_read()` and
`_sql_tx()` give an object with `execute(sql, args)` returning a cursor (fetchone, fetchall,
rowcount), as sqlite3's connection does. Statements are written once, in SQL both engines
take, with `?` placeholders; the PostgreSQL side turns them into psycopg's. So a table whose
statements need no dialect of their own (web sessions, multipart uploads, the tree export's
reads) has one module serving both catalogs, not a copy per engine."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Executor(Protocol):
    def execute(self, sql: str, args: Sequence[Any] = ..., /) -> Cursor: ...


class SqlAccess:
    """Implemented by each catalog: reads outside a transaction, writes in one (durable)."""

    def _sql_read(self) -> AbstractContextManager[Executor]:
        raise NotImplementedError

    def _sql_tx(self) -> AbstractContextManager[Executor]:
        raise NotImplementedError
