"""Copying an embedded SQLite database's rows into the PostgreSQL tables that mirror it, table
by table, resumably, and proving the copy after: `photonic server migrate` runs it for the
catalog (catalog.db) and the job queue (jobs.db).

The PostgreSQL schema is made by the engine's own migrations (PgCatalog, PgJobQueue) before
any row moves; this module only moves rows. Every batch goes in one transaction together with
the row that records how far its table got (`migrate_progress`), so a copy cut short (a kill,
a lost connection) resumes after the last committed batch and never copies a row twice. Rows
are read in rowid order (the primary key's order for a WITHOUT ROWID table), which is also
the order the PostgreSQL rows get their `seq`, the stand-in for SQLite's rowid order.

The proof: for each table, the row count and an order-free digest (the sum, modulo 2^256, of
each row's SHA-256) of the copied columns, read back from both sides. Sequences behind serial
ids are moved past the largest id copied, so the next row a server adds gets a new id."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from photonic.errors import InvalidInput
from photonic.server import faults
from photonic.server.pg_db import PgConnection

BATCH_ROWS = 10_000
_MODULUS = 1 << 256
PROGRESS_DDL = (
    "CREATE TABLE IF NOT EXISTS migrate_progress ("
    " source TEXT NOT NULL, table_name TEXT NOT NULL, last_key TEXT NOT NULL,"
    " rows_copied BIGINT NOT NULL, done INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (source, table_name))")

Progress = Callable[[str, int], None]
"""(table, rows copied so far): called after each committed batch."""


@dataclass(frozen=True)
class TablePlan:
    """One table to copy: the columns both sides have, and the key rows are read in."""

    name: str
    columns: tuple[str, ...]
    order_key: tuple[str, ...]  # ("rowid",) or the primary key's columns
    booleans: frozenset[str]  # PostgreSQL boolean columns (SQLite keeps 0/1)
    seeded: bool = False  # the schema's migrations put rows in it, which the copy replaces


@dataclass(frozen=True)
class TableCheck:
    name: str
    source_rows: int
    target_rows: int
    digests_equal: bool

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.digests_equal


def sqlite_tables(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name != 'schema_version' ORDER BY name")]


def plan_tables(db: sqlite3.Connection, pg: PgConnection, source: str,
                not_copied: dict[str, str], seeded: frozenset[str] = frozenset()
                ) -> list[TablePlan]:
    """The tables of the SQLite database in copy order. A table PostgreSQL lacks is an error
    naming it (the two schemas are out of step), unless not_copied gives the reason it is
    left behind; so is a SQLite column PostgreSQL lacks (a row would lose a value)."""
    plans: list[TablePlan] = []
    for table in _parents_first(sqlite_tables(db), pg):
        if table in not_copied:
            continue
        target = _pg_columns(pg, table)
        if not target:
            raise InvalidInput(f"the PostgreSQL database has no table {table!r} for {source}'s "
                               "rows: is its schema from this version of photonic?")
        info = db.execute(f'PRAGMA table_info("{table}")').fetchall()
        columns = tuple(str(r[1]) for r in info)
        lost = [c for c in columns if c not in target]
        if lost:
            raise InvalidInput(f"the PostgreSQL table {table!r} has no column "
                               f"{', '.join(map(repr, lost))} of {source}'s rows")
        without_rowid = "WITHOUT ROWID" in str(db.execute(
            "SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]).upper()
        key = tuple(str(r[1]) for r in sorted((r for r in info if r[5]), key=lambda r: r[5])) \
            if without_rowid else ("rowid",)
        plans.append(TablePlan(table, columns, key,
                               frozenset(c for c, t in target.items() if t == "boolean"),
                               table in seeded))
    return plans


def _parents_first(tables: Sequence[str], pg: PgConnection) -> list[str]:
    """The tables ordered so that a table a foreign key refers to is filled before the
    tables that refer to it (PostgreSQL checks each row as it arrives)."""
    parents: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in pg.execute(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"):
        if child in parents and parent in parents and child != parent:
            parents[child].add(parent)
    ordered: list[str] = []
    while parents:
        ready = sorted(t for t, p in parents.items() if not p - set(ordered))
        if not ready:  # a cycle: PostgreSQL would refuse some row whatever the order
            raise InvalidInput(f"foreign keys form a cycle among {sorted(parents)}")
        for t in ready:
            ordered.append(t)
            del parents[t]
    return ordered


def _pg_columns(pg: PgConnection, table: str) -> dict[str, str]:
    return {str(r[0]): str(r[1]) for r in pg.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s", (table,))}


def copy_table(db: sqlite3.Connection, pg: PgConnection, source: str, plan: TablePlan,
               progress: Progress | None = None) -> int:
    """Copies what is left of one table; returns the rows copied in all runs together."""
    pg.execute(PROGRESS_DDL)
    row = pg.execute("SELECT last_key, rows_copied, done FROM migrate_progress "
                     "WHERE source = %s AND table_name = %s", (source, plan.name)).fetchone()
    last_key: list[Any] | None = _decode_key(row[0]) if row else None
    copied = int(row[1]) if row else 0
    if row and row[2]:
        return copied
    if row is None:
        with pg.transaction():
            if plan.seeded:  # the schema's own row: the source's stands in for it
                pg.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(plan.name)))
            _refuse_foreign_rows(pg, source, plan.name)
            _save_progress(pg, source, plan.name, _encode_key(()), 0, done=False)
    for batch in _batches(db, plan, last_key):
        values = [_to_pg(plan, r[len(plan.order_key):]) for r in batch]
        with pg.transaction():
            with pg.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(plan.name),
                    sql.SQL(", ").join(map(sql.Identifier, plan.columns)))) as copy:
                for v in values:
                    copy.write_row(v)
            copied += len(batch)
            _save_progress(pg, source, plan.name,
                           _encode_key(batch[-1][:len(plan.order_key)]), copied, done=False)
        faults.hit("migrate_after_batch")
        if progress is not None:
            progress(plan.name, copied)
    pg.execute("UPDATE migrate_progress SET done = 1 WHERE source = %s AND table_name = %s",
               (source, plan.name))
    return copied


def _refuse_foreign_rows(pg: PgConnection, source: str, table: str) -> None:
    """A first copy into a table that already has rows would merge two libraries."""
    if pg.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(table))
                  ).fetchone():
        raise InvalidInput(f"the PostgreSQL table {table!r} already holds rows that no "
                           f"migration from {source} put there: migrate into an empty "
                           "database (a server may already use this one)")


def _batches(db: sqlite3.Connection, plan: TablePlan, after: Sequence[Any] | None
             ) -> Iterator[list[tuple[Any, ...]]]:
    keys = ", ".join(f'"{k}"' if k != "rowid" else "rowid" for k in plan.order_key)
    cols = ", ".join(f'"{c}"' for c in plan.columns)
    marks = ", ".join("?" for _ in plan.order_key)
    while True:
        where = f"WHERE ({keys}) > ({marks}) " if after is not None else ""
        rows = db.execute(f'SELECT {keys}, {cols} FROM "{plan.name}" {where}'
                          f"ORDER BY {keys} LIMIT {BATCH_ROWS}", tuple(after or ())).fetchall()
        if not rows:
            return
        yield rows
        after = rows[-1][:len(plan.order_key)]


def _to_pg(plan: TablePlan, values: Sequence[Any]) -> tuple[Any, ...]:
    if not plan.booleans:
        return tuple(values)
    return tuple(bool(v) if c in plan.booleans and v is not None else v
                 for c, v in zip(plan.columns, values, strict=True))


def _save_progress(pg: PgConnection, source: str, table: str, key: str, rows: int, *,
                   done: bool) -> None:
    pg.execute("INSERT INTO migrate_progress (source, table_name, last_key, rows_copied, done) "
               "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (source, table_name) DO UPDATE SET "
               "last_key = EXCLUDED.last_key, rows_copied = EXCLUDED.rows_copied, "
               "done = EXCLUDED.done", (source, table, key, rows, int(done)))


def _encode_key(key: Sequence[Any]) -> str:
    return json.dumps(list(key))


def _decode_key(text: str) -> list[Any] | None:
    key = json.loads(text)
    return key if key else None


def advance_sequences(pg: PgConnection, tables: Sequence[str]) -> None:
    """Every serial column of the tables continues after the largest value now in it."""
    for table in tables:
        for (column,) in pg.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = %s AND column_default LIKE 'nextval(%%'",
                (table,)).fetchall():
            pg.execute(sql.SQL("SELECT setval(pg_get_serial_sequence(%s, %s), "
                               "GREATEST((SELECT MAX({}) FROM {}), 1))").format(
                sql.Identifier(column), sql.Identifier(table)), (table, column))


def analyze(pg: PgConnection, tables: Sequence[str]) -> None:
    """Fresh planner statistics for the copied tables. Those taken while the tables were
    empty (at their creation) would stand until autovacuum looks, a minute or more on: a
    server started at once would plan every manifest for empty tables, a foreign-key check
    costing a scan per row (found by the 10M-photo manifest figure)."""
    for table in tables:
        pg.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


def check_table(db: sqlite3.Connection, pg: PgConnection, plan: TablePlan,
                added_here: str = "") -> TableCheck:
    """Row counts and order-free digests of the copied columns on both sides; added_here is
    a condition on the PostgreSQL rows the migration itself added (its audit row), which
    have no source row."""
    cols = ", ".join(f'"{c}"' for c in plan.columns)
    source_rows, source_digest = _digest(
        _to_pg(plan, r) for r in db.execute(f'SELECT {cols} FROM "{plan.name}"'))
    with pg.transaction(), pg.cursor(name=f"check_{plan.name}") as cur:
        cur.itersize = BATCH_ROWS
        cur.execute(sql.SQL("SELECT {} FROM {}{}").format(
            sql.SQL(", ").join(map(sql.Identifier, plan.columns)), sql.Identifier(plan.name),
            sql.SQL(f" WHERE NOT ({added_here})" if added_here else "")))
        target_rows, target_digest = _digest(tuple(r) for r in cur)
    return TableCheck(plan.name, source_rows, target_rows, source_digest == target_digest)


def _digest(rows: Iterator[tuple[Any, ...]] | Any) -> tuple[int, int]:
    count, total = 0, 0
    for row in rows:
        count += 1
        total += int.from_bytes(hashlib.sha256(repr(tuple(_canonical(v) for v in row))
                                               .encode()).digest(), "big")
    return count, total % _MODULUS


def _canonical(value: Any) -> Any:
    """One spelling per value, whichever engine read it: bool as int, memoryview as bytes."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def open_source(path: Path) -> sqlite3.Connection:
    """The embedded database, read-only: the migration never changes its source."""
    if not path.exists():
        raise InvalidInput(f"no database at {path}")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
