"""New paths' first versions, gathered through one of PgCatalog.writing()'s transactions and
written together: a manifest slice of 100 new paths is six set-based statements (photos,
locations, folders, versions, totals, agents), not six statements a photo. On PostgreSQL each
statement costs tens of microseconds of the server's parse-plan-execute even in a pipeline,
and the per-photo updates of one agent's totals and agents row piled row versions on the same
row inside one transaction; so the stored-manifest figure (1,000 paths of known content) was
about 0.5 ms a photo before, against a goal of 0.1.

Only a path the caller found new under the library lock goes here (NewVersion.known_location
== 0, no conflict): nothing else in the transaction can depend on its rows except a later
read, and PgOpenTransaction writes what is gathered before any read or other write, every
SEND_EVERY photos, and at the end of the block, so the transaction sees its own rows as it did
when each was written at once."""

from __future__ import annotations

from collections import defaultdict

from photonic.server.catalog_browse import ancestry, folder_of
from photonic.server.catalog_writes import NewVersion, photo_args
from photonic.server.pg_db import PgConnection

_PHOTOS_SQL = (
    "INSERT INTO photos (sha256, size, stored_ms, capture_time_ms, camera, lens, has_gps, "
    "width, height) SELECT * FROM unnest(%b::text[], %b::bigint[], %b::bigint[], "
    "%b::bigint[], %b::text[], %b::text[], %b::integer[], %b::bigint[], %b::bigint[]) "
    "ON CONFLICT (sha256) DO NOTHING")
_LOCATIONS_SQL = (
    "INSERT INTO locations (agent_id, watch_name, rel_path, head_version, folder) "
    "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::integer[], %b::text[]) "
    "ON CONFLICT (agent_id, watch_name, rel_path) DO NOTHING")
_FOLDERS_SQL = (
    "INSERT INTO library_folders (agent_id, watch_name, parent, name) "
    "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[]) "
    "ON CONFLICT DO NOTHING")
_VERSIONS_SQL = (
    "INSERT INTO versions (location_id, version, sha256, library_path, created_ms, mtime_ns, "
    "incomplete) SELECT l.id, u.version, u.sha256, u.library_path, u.created_ms, u.mtime_ns, "
    "u.incomplete FROM unnest(%b::text[], %b::text[], %b::text[], %b::integer[], %b::text[], "
    "%b::text[], %b::bigint[], %b::bigint[], %b::integer[]) AS u (agent_id, watch_name, "
    "rel_path, version, sha256, library_path, created_ms, mtime_ns, incomplete) "
    "JOIN locations l ON l.agent_id = u.agent_id AND l.watch_name = u.watch_name "
    "AND l.rel_path = u.rel_path")
_TOTALS_SQL = (
    "INSERT INTO agent_totals (agent_id, photos, bytes) VALUES (%s, %s, %s) "
    "ON CONFLICT (agent_id) DO UPDATE SET photos = agent_totals.photos + excluded.photos, "
    "bytes = agent_totals.bytes + excluded.bytes")
_SYNCED_SQL = "UPDATE agents SET last_sync_ms = %s WHERE agent_id = ANY(%b::text[])"
_CHECKS_SQL = (
    "INSERT INTO object_checks (sha256, size, mtime_ns, verified_ms) "
    "SELECT * FROM unnest(%b::text[], %b::bigint[], %b::bigint[], %b::bigint[]) "
    "ON CONFLICT (sha256) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
    "verified_ms = excluded.verified_ms")


SEND_EVERY = 100
"""First versions gathered before they are written without waiting for the end of the block
(half of Library's RECORD_SLICE). The transaction is pipelined, so the statements go out and
PostgreSQL executes them while the caller makes the next photos' library links; written only
at the end, the database sat idle through the links and the links through the database
(1,000 stored paths over 10M photos: ~12 ms less, bench/README.md). Not every few photos:
each write is six statements whose replies are then read on the caller's thread."""


class FirstVersions:
    def __init__(self) -> None:
        self._pending: list[tuple[NewVersion, int]] = []

    @property
    def count(self) -> int:
        return len(self._pending)

    def add(self, v: NewVersion, ts: int) -> None:
        self._pending.append((v, ts))

    def write(self, c: PgConnection) -> None:
        """Writes what was gathered (nothing when empty), in the order the per-photo path
        wrote it: photos, checks, locations, folders, versions, totals, agents."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        photos = [photo_args(v.sha256, v.size, v.exif, ts) for v, ts in pending]
        c.execute(_PHOTOS_SQL, [list(column) for column in zip(*photos, strict=True)])
        checks = {v.sha256: (v.sha256, *v.object_check, ts) for v, ts in pending
                  if v.object_check is not None}
        if checks:
            c.execute(_CHECKS_SQL, [list(col) for col in zip(*checks.values(), strict=True)])
        c.execute(_LOCATIONS_SQL, [
            [v.agent_id for v, _ in pending], [v.watch_name for v, _ in pending],
            [v.rel_path for v, _ in pending], [v.version for v, _ in pending],
            [folder_of(v.rel_path) for v, _ in pending]])
        folders = sorted({(v.agent_id, v.watch_name, parent, name) for v, _ in pending
                          for parent, name in ancestry(folder_of(v.rel_path))})
        if folders:
            c.execute(_FOLDERS_SQL, [list(col) for col in zip(*folders, strict=True)])
        c.execute(_VERSIONS_SQL, [
            [v.agent_id for v, _ in pending], [v.watch_name for v, _ in pending],
            [v.rel_path for v, _ in pending], [v.version for v, _ in pending],
            [v.sha256 for v, _ in pending], [v.library_path for v, _ in pending],
            [ts for _, ts in pending], [v.mtime_ns for v, _ in pending],
            [int(v.incomplete) for v, _ in pending]])
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for v, _ in pending:
            totals[v.agent_id][0] += 1
            totals[v.agent_id][1] += v.size
        for agent_id, (count, size) in sorted(totals.items()):
            c.execute(_TOTALS_SQL, (agent_id, count, size))
        c.execute(_SYNCED_SQL, (max(ts for _, ts in pending), sorted(totals)))
