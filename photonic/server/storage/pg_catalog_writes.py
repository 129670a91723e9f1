"""The catalog's per-photo writes on PostgreSQL: catalog_writes.py's statements, one function
per statement where the dialects differ (placeholders, RETURNING instead of lastrowid, a row
lock where SQLite's single writer made a read-then-write safe). The same functions serve one
photo in its own transaction and many photos in PgCatalog.writing()'s one transaction.

Two servers may record versions at once: a path's location row is locked (FOR UPDATE) before
its head moves, so the bytes difference note_head_move adds is computed against the head that
is actually replaced; the summaries grow by ON CONFLICT DO UPDATE increments, never by a
read-modify-write in Python."""

from __future__ import annotations

from collections.abc import Sequence

from photonic.models import ExifSummary
from photonic.server.catalog_browse import (
    HEAD_MOVE_BYTES_SQL,
    NEW_PATH_BYTES_SQL,
    ancestry,
    folder_of,
)
from photonic.server.catalog_writes import (
    AGENT_SYNCED_SQL,
    INSERT_PARKED_CONFLICT_SQL,
    INSERT_PHOTO_SQL,
    INSERT_SETTLED_CONFLICT_SQL,
    INSERT_VERSION_SQL,
    MOVE_HEAD_SQL,
    READ_HEAD_SQL,
    READ_VERSION_SQL,
    RELOCATE_HEAD_SQL,
    UPSERT_CHECK_SQL,
    LocationHead,
    NewVersion,
    head_of,
    now_ms,
    photo_args,
    settled_conflict_args,
)
from photonic.server.pg_db import PgConnection
from photonic.server.storage.pg_first_versions import SEND_EVERY, FirstVersions


def pg(sql: str) -> str:
    """A statement shared with SQLite (catalog_writes, catalog_browse) in psycopg's
    placeholders: those statements hold no literal '?' or '%'."""
    return sql.replace("?", "%s")


class PgOpenTransaction:
    """CatalogWrites inside PgCatalog.writing()'s transaction (see catalog_writes.
    OpenTransaction): the `durable` flags are the owner's, and ignored here. New paths' first
    versions are gathered and written together (pg_first_versions): before any other read or
    write of the transaction, and by finish() at the end of the block."""

    def __init__(self, conn: PgConnection) -> None:
        self._c = conn
        self._firsts = FirstVersions()

    def finish(self) -> None:
        self._firsts.write(self._c)

    def get_head(self, agent_id: str, watch_name: str, rel_path: str) -> LocationHead | None:
        self.finish()
        return read_head(self._c, agent_id, watch_name, rel_path)

    def get_heads(self, agent_id: str, paths: Sequence[tuple[str, str]]
                  ) -> dict[tuple[str, str], LocationHead]:
        self.finish()
        return read_heads(self._c, agent_id, paths)

    def find_version(self, location_id: int, sha256: str,
                     mtime_ns: int) -> tuple[int, str] | None:
        self.finish()
        return read_version(self._c, location_id, sha256, mtime_ns)

    def commit_version(self, v: NewVersion, *, durable: bool = True) -> int | None:
        if v.known_location == 0 and v.conflict_server_sha256 is None:
            self._firsts.add(v, now_ms())
            if self._firsts.count >= SEND_EVERY:
                self.finish()  # sent, not awaited: see SEND_EVERY
            return None
        self.finish()
        return write_version(self._c, v)

    def park_conflict(self, agent_id: str, watch: str, rel: str, server_sha256: str,
                      incoming_sha256: str, size: int, exif: ExifSummary, mtime_ns: int) -> int:
        self.finish()
        return write_parked_conflict(self._c, agent_id, watch, rel, server_sha256,
                                     incoming_sha256, size, exif, mtime_ns)

    def record_verified(self, checks: Sequence[tuple[str, int, int]], *,
                        durable: bool = False) -> None:
        self.finish()
        upsert_checks(self._c, checks, now_ms())


def read_head(c: PgConnection, agent_id: str, watch_name: str,
              rel_path: str) -> LocationHead | None:
    return head_of(c.execute(pg(READ_HEAD_SQL), (agent_id, watch_name, rel_path)).fetchone())


READ_HEADS_SQL = (
    "SELECT l.watch_name, l.rel_path, l.id, l.head_version, v.sha256, v.library_path, "
    "(SELECT MAX(version) FROM versions WHERE location_id = l.id) "
    "FROM unnest(%b::text[], %b::text[]) AS p (watch_name, rel_path) "
    "JOIN locations l ON l.agent_id = %s AND l.watch_name = p.watch_name "
    "AND l.rel_path = p.rel_path "
    "JOIN versions v ON v.location_id = l.id AND v.version = l.head_version")


def read_heads(c: PgConnection, agent_id: str, paths: Sequence[tuple[str, str]]
               ) -> dict[tuple[str, str], LocationHead]:
    """READ_HEAD_SQL for many paths in one round trip (a manifest slice's)."""
    if not paths:
        return {}
    rows = c.execute(READ_HEADS_SQL, ([w for w, _ in paths], [r for _, r in paths],
                                      agent_id)).fetchall()
    found = {}
    for row in rows:
        head = head_of(row[2:])
        assert head is not None
        found[(str(row[0]), str(row[1]))] = head
    return found


def read_version(c: PgConnection, location_id: int, sha256: str,
                 mtime_ns: int) -> tuple[int, str] | None:
    row = c.execute(pg(READ_VERSION_SQL), (location_id, sha256, mtime_ns)).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def write_version(c: PgConnection, v: NewVersion) -> int | None:
    """Records a version (and the head move it implies); returns the conflict id, if any."""
    ts = now_ms()
    insert_photo(c, v.sha256, v.size, v.exif)
    if v.object_check is not None:
        upsert_checks(c, [(v.sha256, *v.object_check)], ts)
    if v.known_location == 0 and v.conflict_server_sha256 is None:
        _write_first_version(c, v, ts)  # a new path: every statement sent, none waited for
        return None
    if v.known_location:  # the caller holds the path: its row lock, without an answer
        loc_id, new_path = v.known_location, False
        c.execute("SELECT 1 FROM locations WHERE id = %s FOR UPDATE", (loc_id,))
    else:
        loc_id, new_path = lock_location(c, v.agent_id, v.watch_name, v.rel_path, v.version)
    if new_path:  # its first version is its head, whatever make_head says
        note_new_path(c, v.agent_id, v.watch_name, v.rel_path, v.sha256)
    if v.relocated_head_path is not None:
        c.execute(pg(RELOCATE_HEAD_SQL), (v.relocated_head_path, loc_id, loc_id))
    c.execute(pg(INSERT_VERSION_SQL), (loc_id, v.version, v.sha256, v.library_path, ts,
                                       v.mtime_ns, int(v.incomplete)))
    if v.make_head and not new_path:
        note_head_move(c, v.agent_id, loc_id, v.sha256)
        c.execute(pg(MOVE_HEAD_SQL), (v.version, loc_id))
    c.execute(pg(AGENT_SYNCED_SQL), (ts, v.agent_id))
    if v.conflict_server_sha256 is None:
        return None
    row = c.execute(pg(INSERT_SETTLED_CONFLICT_SQL) + " RETURNING id",
                    settled_conflict_args(loc_id, v, ts)).fetchone()
    assert row is not None
    return int(row[0])


def _write_first_version(c: PgConnection, v: NewVersion, ts: int) -> None:
    """A path the caller found new under the library lock (which no other server's writer
    passes): its location, folders, totals and first version, the version's location id
    read inside the INSERT instead of returned, so in writing()'s pipeline no statement
    waits for an answer. ON CONFLICT keeps a path that exists after all (a caller without
    the lock) from failing the slice; the version insert then still finds its location."""
    c.execute(
        "INSERT INTO locations (agent_id, watch_name, rel_path, head_version, folder) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (agent_id, watch_name, rel_path) "
        "DO NOTHING", (v.agent_id, v.watch_name, v.rel_path, v.version, folder_of(v.rel_path)))
    note_new_path(c, v.agent_id, v.watch_name, v.rel_path, v.sha256)
    c.execute(
        "INSERT INTO versions (location_id, version, sha256, library_path, created_ms, "
        "mtime_ns, incomplete) SELECT id, %s, %s, %s, %s, %s, %s FROM locations "
        "WHERE agent_id = %s AND watch_name = %s AND rel_path = %s",
        (v.version, v.sha256, v.library_path, ts, v.mtime_ns, int(v.incomplete), v.agent_id,
         v.watch_name, v.rel_path))
    c.execute(pg(AGENT_SYNCED_SQL), (ts, v.agent_id))


def write_parked_conflict(c: PgConnection, agent_id: str, watch: str, rel: str,
                          server_sha256: str, incoming_sha256: str, size: int,
                          exif: ExifSummary, mtime_ns: int) -> int:
    """Keeps an incoming version (content + an open conflict) without touching the library;
    the same parked content twice is one conflict (the path's row lock orders two servers
    parking the same content, so the second finds the first's conflict)."""
    insert_photo(c, incoming_sha256, size, exif)
    loc = c.execute(
        "SELECT id FROM locations WHERE agent_id = %s AND watch_name = %s AND rel_path = %s "
        "FOR UPDATE", (agent_id, watch, rel),
    ).fetchone()
    assert loc is not None, "a conflict is parked only at a path the library holds"
    row = c.execute(
        "SELECT id FROM conflicts WHERE location_id = %s AND incoming_sha256 = %s "
        "AND resolved_ms IS NULL", (int(loc[0]), incoming_sha256),
    ).fetchone()
    if row is not None:
        return int(row[0])
    made = c.execute(pg(INSERT_PARKED_CONFLICT_SQL) + " RETURNING id",
                     (int(loc[0]), server_sha256, incoming_sha256, mtime_ns, now_ms())
                     ).fetchone()
    assert made is not None
    return int(made[0])


def upsert_checks(c: PgConnection, checks: Sequence[tuple[str, int, int]], ts: int) -> None:
    if not checks:
        return
    with c.cursor() as cur:
        cur.executemany(pg(UPSERT_CHECK_SQL),
                        [(sha, size, mtime_ns, ts) for sha, size, mtime_ns in checks])


def insert_photo(c: PgConnection, sha256: str, size: int, exif: ExifSummary) -> None:
    c.execute(pg(INSERT_PHOTO_SQL), photo_args(sha256, size, exif, now_ms()))


def lock_location(c: PgConnection, agent: str, watch: str, rel: str,
                  version: int) -> tuple[int, bool]:
    """(the path's location id, whether this call inserted it with version as its head),
    with the location's row locked until the transaction ends: one statement, which inserts
    the path or, when it exists (another server may have inserted it just now: the statement
    waits for that transaction), takes its row lock with a no-op update. xmax = 0 only on a
    row this statement inserted."""
    row = c.execute(
        "INSERT INTO locations (agent_id, watch_name, rel_path, head_version, folder) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (agent_id, watch_name, rel_path) "
        "DO UPDATE SET head_version = locations.head_version RETURNING id, xmax = 0",
        (agent, watch, rel, version, folder_of(rel))).fetchone()
    assert row is not None
    return int(row[0]), bool(row[1])


def note_new_path(c: PgConnection, agent_id: str, watch_name: str, rel_path: str,
                  sha256: str) -> None:
    """catalog_browse.note_new_path on PostgreSQL: the path's folders exist, and its agent
    holds one more photo and its bytes. Every ancestor in one statement (a path is a few
    folders deep), which needs no answer: writing() sends it without waiting."""
    folders = list(ancestry(folder_of(rel_path)))
    if folders:
        c.execute(
            "INSERT INTO library_folders (agent_id, watch_name, parent, name) VALUES "
            + ", ".join(["(%s, %s, %s, %s)"] * len(folders)) + " ON CONFLICT DO NOTHING",
            [v for parent, name in folders for v in (agent_id, watch_name, parent, name)])
    _add_to_totals(c, agent_id, 1, pg(NEW_PATH_BYTES_SQL), (sha256,))


def note_head_move(c: PgConnection, agent_id: str, location_id: int, new_sha256: str) -> None:
    """catalog_browse.note_head_move on PostgreSQL (the location's row is locked)."""
    _add_to_totals(c, agent_id, 0, pg(HEAD_MOVE_BYTES_SQL), (new_sha256, location_id))


def _add_to_totals(c: PgConnection, agent_id: str, photos: int, bytes_sql: str,
                   args: tuple[object, ...]) -> None:
    c.execute(
        "INSERT INTO agent_totals (agent_id, photos, bytes) "
        f"VALUES (%s, %s, COALESCE({bytes_sql}, 0)) ON CONFLICT (agent_id) DO UPDATE SET "
        "photos = agent_totals.photos + excluded.photos, "
        "bytes = agent_totals.bytes + excluded.bytes",
        (agent_id, photos, *args))
