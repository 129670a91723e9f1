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
from photonic.server.catalog_browse import ancestry, folder_of
from photonic.server.catalog_writes import LocationHead, NewVersion, now_ms
from photonic.server.pg_db import PgConnection


class PgOpenTransaction:
    """CatalogWrites inside PgCatalog.writing()'s transaction (see catalog_writes.
    OpenTransaction): the `durable` flags are the owner's, and ignored here."""

    def __init__(self, conn: PgConnection) -> None:
        self._c = conn

    def get_head(self, agent_id: str, watch_name: str, rel_path: str) -> LocationHead | None:
        return read_head(self._c, agent_id, watch_name, rel_path)

    def find_version(self, location_id: int, sha256: str,
                     mtime_ns: int) -> tuple[int, str] | None:
        return read_version(self._c, location_id, sha256, mtime_ns)

    def commit_version(self, v: NewVersion, *, durable: bool = True) -> int | None:
        return write_version(self._c, v)

    def park_conflict(self, agent_id: str, watch: str, rel: str, server_sha256: str,
                      incoming_sha256: str, size: int, exif: ExifSummary, mtime_ns: int) -> int:
        return write_parked_conflict(self._c, agent_id, watch, rel, server_sha256,
                                     incoming_sha256, size, exif, mtime_ns)

    def record_verified(self, checks: Sequence[tuple[str, int, int]], *,
                        durable: bool = False) -> None:
        upsert_checks(self._c, checks, now_ms())


def read_head(c: PgConnection, agent_id: str, watch_name: str,
              rel_path: str) -> LocationHead | None:
    row = c.execute(
        "SELECT l.id, l.head_version, v.sha256, v.library_path, "
        "(SELECT MAX(version) FROM versions WHERE location_id = l.id) "
        "FROM locations l "
        "JOIN versions v ON v.location_id = l.id AND v.version = l.head_version "
        "WHERE l.agent_id = %s AND l.watch_name = %s AND l.rel_path = %s",
        (agent_id, watch_name, rel_path),
    ).fetchone()
    if row is None:
        return None
    loc, head, sha, path, max_version = row
    return LocationHead(int(loc), int(head), str(sha), str(path), int(max_version))


def read_version(c: PgConnection, location_id: int, sha256: str,
                 mtime_ns: int) -> tuple[int, str] | None:
    row = c.execute(
        "SELECT version, library_path FROM versions WHERE location_id = %s AND sha256 = %s "
        "AND mtime_ns = %s ORDER BY version DESC LIMIT 1",
        (location_id, sha256, mtime_ns),
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def write_version(c: PgConnection, v: NewVersion) -> int | None:
    """Records a version (and the head move it implies); returns the conflict id, if any."""
    ts = now_ms()
    insert_photo(c, v.sha256, v.size, v.exif)
    if v.object_check is not None:
        upsert_checks(c, [(v.sha256, *v.object_check)], ts)
    loc_id, new_path = lock_location(c, v.agent_id, v.watch_name, v.rel_path, v.version)
    if new_path:  # its first version is its head, whatever make_head says
        note_new_path(c, v.agent_id, v.watch_name, v.rel_path, v.sha256)
    if v.relocated_head_path is not None:
        c.execute(
            "UPDATE versions SET library_path = %s WHERE location_id = %s AND version = "
            "(SELECT head_version FROM locations WHERE id = %s)",
            (v.relocated_head_path, loc_id, loc_id),
        )
    c.execute(
        "INSERT INTO versions (location_id, version, sha256, library_path, created_ms, "
        "mtime_ns, incomplete) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (loc_id, v.version, v.sha256, v.library_path, ts, v.mtime_ns, int(v.incomplete)),
    )
    if v.make_head and not new_path:
        note_head_move(c, v.agent_id, loc_id, v.sha256)
        c.execute("UPDATE locations SET head_version = %s WHERE id = %s", (v.version, loc_id))
    c.execute("UPDATE agents SET last_sync_ms = %s WHERE agent_id = %s", (ts, v.agent_id))
    if v.conflict_server_sha256 is None:
        return None
    row = c.execute(
        "INSERT INTO conflicts (location_id, server_sha256, incoming_sha256, "
        "incoming_mtime_ns, created_ms, resolved_ms, resolution) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (loc_id, v.conflict_server_sha256, v.sha256, v.mtime_ns, ts, ts,
         v.conflict_resolution),
    ).fetchone()
    assert row is not None
    return int(row[0])


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
    made = c.execute(
        "INSERT INTO conflicts (location_id, server_sha256, incoming_sha256, "
        "incoming_mtime_ns, created_ms) VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (int(loc[0]), server_sha256, incoming_sha256, mtime_ns, now_ms()),
    ).fetchone()
    assert made is not None
    return int(made[0])


def upsert_checks(c: PgConnection, checks: Sequence[tuple[str, int, int]], ts: int) -> None:
    if not checks:
        return
    with c.cursor() as cur:
        cur.executemany(
            "INSERT INTO object_checks (sha256, size, mtime_ns, verified_ms) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (sha256) DO UPDATE SET "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, "
            "verified_ms = excluded.verified_ms",
            [(sha, size, mtime_ns, ts) for sha, size, mtime_ns in checks])


def insert_photo(c: PgConnection, sha256: str, size: int, exif: ExifSummary) -> None:
    c.execute(
        "INSERT INTO photos (sha256, size, stored_ms, capture_time_ms, camera, lens, has_gps, "
        "width, height) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (sha256) DO NOTHING",
        (sha256, size, now_ms(), exif.capture_time_unix_ms, exif.camera, exif.lens_model,
         int(exif.has_gps), exif.width, exif.height),
    )


def lock_location(c: PgConnection, agent: str, watch: str, rel: str,
                  version: int) -> tuple[int, bool]:
    """(the path's location id, whether this call inserted it with version as its head),
    with the location's row locked until the transaction ends."""
    args = (agent, watch, rel)
    select = ("SELECT id FROM locations WHERE agent_id = %s AND watch_name = %s "
              "AND rel_path = %s FOR UPDATE")
    row = c.execute(select, args).fetchone()
    if row is not None:
        return int(row[0]), False
    made = c.execute(
        "INSERT INTO locations (agent_id, watch_name, rel_path, head_version, folder) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (agent_id, watch_name, rel_path) DO NOTHING "
        "RETURNING id", (agent, watch, rel, version, folder_of(rel)),
    ).fetchone()
    if made is not None:
        return int(made[0]), True
    row = c.execute(select, args).fetchone()  # another server inserted it just now
    assert row is not None
    return int(row[0]), False


def note_new_path(c: PgConnection, agent_id: str, watch_name: str, rel_path: str,
                  sha256: str) -> None:
    """catalog_browse.note_new_path on PostgreSQL: the path's folders exist, and its agent
    holds one more photo and its bytes."""
    for parent, name in ancestry(folder_of(rel_path)):
        added = c.execute(
            "INSERT INTO library_folders (agent_id, watch_name, parent, name) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (agent_id, watch_name, parent, name)).rowcount
        if not added:  # a folder already recorded has its ancestors recorded too
            break
    _add_to_totals(c, agent_id, 1, "(SELECT size FROM photos WHERE sha256 = %s)", (sha256,))


def note_head_move(c: PgConnection, agent_id: str, location_id: int, new_sha256: str) -> None:
    """catalog_browse.note_head_move on PostgreSQL (the location's row is locked)."""
    _add_to_totals(
        c, agent_id, 0,
        "(SELECT size FROM photos WHERE sha256 = %s) - COALESCE((SELECT p.size FROM "
        "locations l JOIN versions v ON v.location_id = l.id AND v.version = l.head_version "
        "JOIN photos p ON p.sha256 = v.sha256 WHERE l.id = %s), 0)",
        (new_sha256, location_id))


def _add_to_totals(c: PgConnection, agent_id: str, photos: int, bytes_sql: str,
                   args: tuple[object, ...]) -> None:
    c.execute(
        "INSERT INTO agent_totals (agent_id, photos, bytes) "
        f"VALUES (%s, %s, COALESCE({bytes_sql}, 0)) ON CONFLICT (agent_id) DO UPDATE SET "
        "photos = agent_totals.photos + excluded.photos, "
        "bytes = agent_totals.bytes + excluded.bytes",
        (agent_id, photos, *args))
