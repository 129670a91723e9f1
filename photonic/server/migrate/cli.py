"""`photonic server migrate --to postgresql://… [--objects s3://…]`: moves a stopped embedded
installation (the SQLite catalog and job queue, and with --objects the stored photos) to the
engines several servers share, proves every table and object arrived, and says what to change
in server.yaml. The source is only read; a run cut short resumes where it stopped."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from photonic.errors import PhotonicError

if TYPE_CHECKING:  # loaded only when a migration runs (cli builds the parser)
    from photonic.config import ServerConfig
    from photonic.server.pg_db import PgConnection

MIGRATE_DESCRIPTION = """\
Copies this embedded installation into PostgreSQL (the catalog's and the job queue's rows) and,
with --objects, every stored photo into an S3-compatible bucket, then checks every table (row
count and a digest of every value) and every object (its SHA-256). Run it with the server
stopped; the embedded files are only read, so the installation keeps working until
server.yaml is changed. Re-running after an interruption resumes; after a finished run it
copies nothing and checks again."""

NOT_COPIED = {
    "web_sessions": "dashboard logins start over on the new catalog (log in again)",
    "multipart_uploads": "uploads in progress start over: agents resend what was not "
                         "acknowledged",
    "multipart_parts": "(the parts of those uploads)",
    "scrub_progress": "each server keeps its scrub's progress in its own catalog.db; the "
                      "object checks themselves are copied",
    "replica_versions": "replication to archive nodes needs the embedded catalog (a "
                        "PostgreSQL catalog with storage.backup_nodes is refused)",
    "replica_confirmations": "(as replica_versions)",
    "promotion_renames": "only an archive node's promotion uses it, on an embedded catalog",
}
"""Tables of the embedded catalog deliberately left behind, with the reason printed."""

SEEDED = frozenset({"sync_marks"})
"""Tables whose schema migration inserts a row (a counter), replaced by the source's."""

ADDED_BY_MIGRATE = {"audit": "actor = 'cli:migrate' AND action = 'Migrate'"}
"""Rows a migration writes into the new catalog itself: the checks leave them out."""


def add_migrate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = sub.add_parser("migrate", help="move this stopped embedded installation to "
                                             "PostgreSQL (and S3)",
                             description=MIGRATE_DESCRIPTION,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    migrate.add_argument("--config", type=Path, default=Path("server.yaml"),
                         help="the server's YAML config (default: server.yaml)")
    migrate.add_argument("--to", dest="to_url", required=True, metavar="POSTGRESQL_URL",
                         help="postgresql://user@host:port/database (an empty database, or "
                              "one an interrupted migration of this installation began)")
    migrate.add_argument("--objects", dest="objects_url", default="", metavar="S3_URL",
                         help="s3://bucket/prefix: copy the stored photos there too")
    migrate.add_argument("--s3-endpoint-url", default=None, metavar="URL",
                         help="an S3-compatible endpoint (MinIO, Ceph, B2, Wasabi); default: "
                              "AWS. Use the same as storage.s3.endpoint_url afterwards")
    migrate.add_argument("--s3-region", default=None, metavar="REGION",
                         help="the bucket's region; default: the SDK's (AWS_REGION, ~/.aws)")
    migrate.add_argument("--reread", action="store_true",
                         help="after copying, read every object back from the bucket and "
                              "check its SHA-256 (reads all the bytes again)")


def run_migrate(config: ServerConfig, to_url: str, objects_url: str, *,
                endpoint_url: str | None = None, region: str | None = None,
                reread: bool = False) -> int:
    from photonic._configjobs import queue_backend
    from photonic.server.pg_db import connect, safe_url, unreachable_as_transient
    from photonic.server.promote_cli import refuse_if_listening

    if queue_backend(to_url) != "postgresql":
        raise PhotonicError(f"--to {safe_url(to_url)!r}: expected postgresql://user@host:port/"
                            "database")
    bucket = _bucket_of(config, objects_url) if objects_url else None
    if config.catalog.backend != "sqlite":
        raise PhotonicError(f"{config.config_path}: catalog.url is already "
                            f"{safe_url(config.catalog.url)}; migrate moves an embedded "
                            "catalog")
    catalog_db = config.catalog.sqlite_path
    refuse_if_listening(config, "migrate")
    started = time.monotonic()
    _make_schema(to_url)
    ok = True
    with connect(to_url) as pg, unreachable_as_transient(to_url):
        sources = [("catalog", catalog_db)]
        jobs_db = config.storage_path / "jobs.db"
        if not config.jobs.queue_url and jobs_db.exists():
            sources.append(("job queue", jobs_db))
        for what, path in sources:
            ok = _copy_database(pg, what, path) and ok
    if bucket is not None:
        ok = _copy_objects(config, to_url, bucket, endpoint_url, region, reread) and ok
    took = time.monotonic() - started
    _audit(to_url, config, objects_url, ok)
    if not ok:
        print(f"migration NOT verified ({took:.1f} s): see the lines marked MISMATCH; keep "
              "the embedded installation and run the command again")
        return 1
    print(f"migration verified in {took:.1f} s. Next, in {config.config_path}:")
    print(f"  catalog:\n    url: {safe_url(to_url)}")
    if objects_url:
        print(f"  storage:\n    objects: {objects_url}")
        if endpoint_url or region:
            print("    s3:" + (f"\n      endpoint_url: {endpoint_url}" if endpoint_url else "")
                  + (f"\n      region: {region}" if region else ""))
    print("then start the server. The embedded files are unchanged: keep them until the new "
          "installation has served a while.")
    return 0


def _bucket_of(config: ServerConfig, objects_url: str) -> tuple[str, str]:
    """(bucket, prefix) of --objects, checked before anything is copied."""
    from photonic import _configparse as cp
    from photonic._configobjects import parse_objects_url

    if config.objects.s3 is not None:
        raise PhotonicError(f"{config.config_path}: storage.objects is already s3://; migrate "
                            "copies a local object store")
    try:
        where = parse_objects_url(objects_url)
    except cp.Invalid as exc:
        raise PhotonicError(f"--objects {objects_url!r}: {exc}") from None
    if where is None:
        raise PhotonicError("--objects: expected s3://bucket/prefix")
    return where


def _copy_objects(config: ServerConfig, to_url: str, where: tuple[str, str],
                  endpoint_url: str | None, region: str | None, reread: bool) -> bool:
    """Into the bucket --objects names; credentials come from the SDK's usual chain, as the
    server's do; multipart state goes to the new catalog, where the servers will find it."""
    from photonic._configobjects import S3Settings
    from photonic.server.migrate.objects import copy_objects, open_bucket
    from photonic.server.storage.pg_catalog import PgCatalog

    catalog = PgCatalog(to_url)
    try:
        tally = copy_objects(config.storage_path, open_bucket(
            S3Settings(where[0], where[1], endpoint_url, region), catalog), reread=reread)
    finally:
        catalog.close()
    for sha in tally.damaged:
        print(f"objects: {sha}: MISMATCH: the local object does not hash to its name (run "
              "photonic scrub --now to repair it from a replica); not copied")
    for sha in tally.missing:
        print(f"objects: {sha}: MISMATCH: not in the bucket as it is here")
    if tally.ok:
        print(f"objects: every object is in the bucket with its size"
              f"{' and its SHA-256 (read back)' if reread else ''}: ok")
    return tally.ok


def _audit(to_url: str, config: ServerConfig, objects_url: str, ok: bool) -> None:
    """The migration itself is in the new catalog's audit log, after the rows it copied."""
    from photonic.server.storage.pg_catalog import PgCatalog

    catalog = PgCatalog(to_url)
    try:
        catalog.audit("cli:migrate", "Migrate", str(config.storage_path),
                      "ok" if ok else "mismatch", objects_url)
    finally:
        catalog.close()


def _make_schema(url: str) -> None:
    """Each engine's own migrations make the tables; the copy fills them."""
    from photonic.server.jobs.pg_queue import PgJobQueue
    from photonic.server.storage.pg_catalog import PgCatalog

    PgCatalog(url).close()
    PgJobQueue(url).close()


def _copy_database(pg: PgConnection, what: str, path: Path) -> bool:
    from photonic.server.migrate import table_copy as tc

    source = f"{what}:{path.resolve()}"
    db = tc.open_source(path)
    try:
        for table in sorted(set(tc.sqlite_tables(db)) & NOT_COPIED.keys()):
            print(f"{what}: {table} not copied: {NOT_COPIED[table]}")
        plans = tc.plan_tables(db, pg, source, NOT_COPIED, SEEDED)
        last_print = [time.monotonic()]

        def progress(table: str, rows: int) -> None:
            if time.monotonic() - last_print[0] > 5:
                last_print[0] = time.monotonic()
                print(f"{what}: {table}: {rows} rows copied", flush=True)

        for plan in plans:
            tc.copy_table(db, pg, source, plan, progress)
        tc.advance_sequences(pg, [p.name for p in plans])
        tc.analyze(pg, [p.name for p in plans])
        ok = True
        for plan in plans:
            check = tc.check_table(db, pg, plan, ADDED_BY_MIGRATE.get(plan.name, ""))
            mark = "ok" if check.ok else "MISMATCH"
            print(f"{what}: {plan.name}: {check.source_rows} rows -> {check.target_rows}, "
                  f"values {'equal' if check.digests_equal else 'DIFFER'}: {mark}")
            ok = ok and check.ok
        return ok
    finally:
        db.close()
