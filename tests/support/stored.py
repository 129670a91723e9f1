"""What a test server has stored, read the same way whichever backend keeps it: the local
object store and library tree under storage_path, or (storage.objects: s3://…) the bucket's
objects and the catalog's versions, which are the library in S3 mode. Tests that check what
arrived use these instead of peeking at storage_path, so they run on every backend
(tests/support/backend.py)."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.daemons import (
    ServerHandle,
    catalog_rows,
    is_version_of,
    library_versions,
    sha256_of,
    sqlite_rows,
    tree_hashes,
)

_VERSIONS = ("SELECT v.library_path, v.sha256 FROM versions v "
             "JOIN locations l ON l.id = v.location_id")


@dataclass(frozen=True)
class BucketPlace:
    """Where a server in S3 mode keeps its objects (from its server.yaml)."""

    endpoint_url: str
    bucket: str
    prefix: str

    def client(self) -> Any:
        from tests.support.s3 import test_client
        return test_client(self.endpoint_url)

    def key(self, sha: str) -> str:
        return f"{self.prefix}objects/{sha[:2]}/{sha[2:4]}/{sha}"

    def digests(self) -> set[str]:
        """The names of every object in the bucket (keys under <prefix>objects/)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}objects/")
        return {o["Key"].rsplit("/", 1)[-1] for page in pages for o in page.get("Contents", [])}

    def read(self, sha: str) -> bytes | None:
        """Object sha's bytes, or None when the bucket has no such object."""
        client = self.client()
        try:
            return bytes(client.get_object(Bucket=self.bucket, Key=self.key(sha))["Body"].read())
        except client.exceptions.NoSuchKey:
            return None


def bucket_of(server: ServerHandle) -> BucketPlace | None:
    """The server's bucket, or None when its objects are local files."""
    return bucket_in(server.config_path)


def bucket_in(config_path: Path) -> BucketPlace | None:
    """The bucket the server.yaml at config_path names, or None (local objects)."""
    config = yaml.safe_load(config_path.read_text("utf-8")) if config_path.exists() else {}
    storage = config.get("storage") or {}
    where = str(storage.get("objects", "local"))
    if not where.startswith("s3://"):
        return None
    bucket, _slash, prefix = where[len("s3://"):].partition("/")
    prefix = "".join(f"{p}/" for p in prefix.split("/") if p)
    return BucketPlace(str((storage.get("s3") or {}).get("endpoint_url", "")), bucket, prefix)


def stored_digests(server: ServerHandle) -> set[str]:
    """The SHA-256 of every object the server holds (local files' names, or bucket keys)."""
    place = bucket_of(server)
    return {p.name for p in server.objects()} if place is None else place.digests()


def object_bytes(server: ServerHandle, sha: str) -> bytes | None:
    """The stored bytes of object sha, or None when the server does not hold it."""
    place = bucket_of(server)
    if place is None:
        path = server.storage / "objects" / sha[:2] / sha[2:4] / sha
        return path.read_bytes() if path.is_file() else None
    return place.read(sha)


def verified_objects(server: ServerHandle) -> dict[str, bool]:
    """{sha256: whether its stored bytes hash to that name} for every object held."""
    place = bucket_of(server)
    if place is None:
        return {p.name: sha256_of(p) == p.name for p in server.objects()}
    return {sha: hashlib.sha256(object_bytes(server, sha) or b"").hexdigest() == sha
            for sha in stored_digests(server)}


def library_hashes(server: ServerHandle, agent_id: str, watch: str) -> dict[str, str]:
    """{relative path: sha256} of the agent's watch folder as the library shows it, older
    versions (`name.vN.ext`) included: the files of the local tree, or in S3 mode every
    catalog version under that folder, each one's bytes read from the bucket and hashed (so a
    row whose object is missing or wrong shows as a wrong hash, as a bad file would)."""
    if bucket_of(server) is None:
        library = server.library(agent_id, watch)
        return tree_hashes(library) if library.is_dir() else {}
    folder = f"library/{agent_id}/{watch}/"
    out: dict[str, str] = {}
    for path, sha in catalog_rows(server, _VERSIONS):
        if str(path).startswith(folder):
            data = object_bytes(server, str(sha))
            out[str(path)[len(folder):]] = "" if data is None else hashlib.sha256(
                data).hexdigest()
    return dict(sorted(out.items()))


def library_bytes(server: ServerHandle, agent_id: str, watch: str, rel: str) -> bytes | None:
    """The bytes the library shows at agent/watch/rel (a file of the tree, or the object of
    the catalog version with that library path); None when there is none."""
    if bucket_of(server) is None:
        path = server.library(agent_id, watch) / rel
        return path.read_bytes() if path.is_file() else None
    rows = catalog_rows(server, "SELECT sha256 FROM versions WHERE library_path = ?",
                        (f"library/{agent_id}/{watch}/{rel}",))
    return object_bytes(server, str(rows[0][0])) if rows else None


def job_rows(server: ServerHandle, sql: str,
             params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows from the server's job queue wherever it is: jobs.queue_url, else a PostgreSQL
    catalog.url (the queue follows it), else jobs.db; sql in SQLite's ? placeholders."""
    config = yaml.safe_load(server.config_path.read_text("utf-8")) or {}
    url = str((config.get("jobs") or {}).get("queue_url", ""))
    catalog = str((config.get("catalog") or {}).get("url", ""))
    if not url and catalog.startswith(("postgresql://", "postgres://")):
        url = catalog
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg
        with psycopg.connect(url, autocommit=True) as conn:
            return [tuple(r) for r in conn.execute(
                sql.replace("%", "%%").replace("?", "%s").encode(), params)]
    path = Path(url[len("sqlite://"):]) if url.startswith("sqlite://") else (
        server.storage / "jobs.db")
    return sqlite_rows(path, sql, params)


def library_sha(server: ServerHandle, agent_id: str, watch: str, rel: str) -> str | None:
    """The SHA-256 of what the library shows at agent/watch/rel; None when nothing is there."""
    data = library_bytes(server, agent_id, watch, rel)
    return None if data is None else hashlib.sha256(data).hexdigest()


def library_versions_at(server: ServerHandle, agent_id: str, watch: str,
                        rel: str) -> dict[str, str]:
    """{file name: sha256} of rel and every older version the library keeps beside it
    (`name.vN.ext`), on either backend (daemons.library_versions reads the local tree)."""
    if bucket_of(server) is None:
        return library_versions(server.library(agent_id, watch), rel)
    folder, _slash, name = rel.rpartition("/")
    prefix = f"{folder}/" if folder else ""
    return {path[len(prefix):]: sha
            for path, sha in library_hashes(server, agent_id, watch).items()
            if path.startswith(prefix) and "/" not in path[len(prefix):]
            and is_version_of(name, path[len(prefix):])}


def library_files(server: ServerHandle) -> dict[str, str]:
    """{path below library/: sha256} of every entry the library shows: the local tree, or in
    S3 mode the catalog's versions (uploads included) and the job outputs under _derived/,
    each one's bytes read back from the bucket and hashed."""
    return {path: hashlib.sha256(data).hexdigest() if data is not None else ""
            for path, data in library_contents(server).items()}


def library_contents(server: ServerHandle) -> dict[str, bytes | None]:
    """{path below library/: its bytes (None where the object is missing)}, as library_files
    sees the library."""
    if bucket_of(server) is None:
        library = server.storage / "library"
        return {p.relative_to(library).as_posix(): p.read_bytes()
                for p in sorted(library.rglob("*")) if p.is_file()} if library.is_dir() else {}
    rows = [(str(path).removeprefix("library/"), str(sha))
            for path, sha in catalog_rows(server, _VERSIONS)]
    if job_queue_exists(server):
        rows += [(str(path), str(sha)) for path, sha in job_rows(
            server, "SELECT library_path, sha256 FROM job_outputs WHERE library_path != ''")]
    return {path: object_bytes(server, sha) for path, sha in sorted(rows)}


def job_queue_exists(server: ServerHandle) -> bool:
    """Whether the server has made its job queue yet (an embedded one is a file it creates)."""
    try:
        job_rows(server, "SELECT COUNT(*) FROM jobs")
    except sqlite3.OperationalError:
        return False
    return True


def received_bytes(server: ServerHandle, sha: str) -> int:
    """How much of an upload of sha the server holds so far: its local partial file (or
    parked .resume), or in S3 mode the parts the catalog's multipart ledger records."""
    if bucket_of(server) is None:
        partial = server.storage / "partial"
        sizes = [p.stat().st_size for p in (partial / f"{sha}.part", partial / f"{sha}.resume")
                 if p.exists()]
        return max(sizes, default=0)
    rows = catalog_rows(server, "SELECT SUM(size) FROM multipart_parts WHERE sha256 = ?",
                        (sha,))
    return int(rows[0][0] or 0) if rows else 0


def catalog_is_embedded(server: ServerHandle) -> bool:
    """Whether the server keeps its catalog in storage_path's catalog.db (no catalog.url, or
    a sqlite:// one) rather than in PostgreSQL."""
    config = yaml.safe_load(server.config_path.read_text("utf-8")) or {}
    url = str((config.get("catalog") or {}).get("url", ""))
    return not url.startswith(("postgresql://", "postgres://"))


def content_hashes(server: ServerHandle) -> set[str]:
    """The SHA-256 of the bytes of everything the server stores: every object (hashed, not
    trusted by its name) and every library entry."""
    hashes = {hashlib.sha256(object_bytes(server, sha) or b"").hexdigest()
              for sha in stored_digests(server)}
    return hashes | set(library_files(server).values())


def output_files(server: ServerHandle, folder: str) -> dict[str, str]:
    """{path below library/: sha256} of the job outputs the library shows under folder (such
    as "_derived/bgremove/laptop/t3"): the local tree's files, or in S3 mode the job queue's
    output rows there, each one's object read back from the bucket and hashed."""
    folder = folder.rstrip("/") + "/"
    if bucket_of(server) is None:
        root = server.storage / "library" / folder
        return {folder + rel: sha for rel, sha in tree_hashes(root).items()} if root.is_dir() \
            else {}
    out: dict[str, str] = {}
    for path, sha in job_rows(server, "SELECT library_path, sha256 FROM job_outputs"):
        if str(path).startswith(folder):
            data = object_bytes(server, str(sha))
            out[str(path)] = "" if data is None else hashlib.sha256(data).hexdigest()
    return dict(sorted(out.items()))


def upload_leftovers(server: ServerHandle) -> list[str]:
    """What unfinished uploads left behind: files in the local partial/ folder (not its
    subfolders, such as the web upload spool), or in S3 mode staging objects and open
    multipart uploads in the bucket."""
    place = bucket_of(server)
    if place is None:
        partial = server.storage / "partial"
        return sorted(p.name for p in partial.iterdir() if p.is_file()) if partial.is_dir() \
            else []
    client = place.client()
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=place.bucket, Prefix=f"{place.prefix}staging/")
    staged = [o["Key"] for page in pages for o in page.get("Contents", [])]
    uploads = client.list_multipart_uploads(Bucket=place.bucket).get("Uploads", [])
    return sorted(staged + [f"multipart:{u['Key']}" for u in uploads])


def remove_object(server: ServerHandle, sha: str) -> None:
    """Deletes object sha behind the server's back (a damaged or lost store, for a test)."""
    place = bucket_of(server)
    if place is None:
        (server.storage / "objects" / sha[:2] / sha[2:4] / sha).unlink()
    else:
        place.client().delete_object(Bucket=place.bucket, Key=place.key(sha))


def catalog_size_bytes(server: ServerHandle) -> int:
    """How much room the catalog takes: catalog.db and its write-ahead log, or the size of
    its PostgreSQL database (pg_database_size)."""
    if catalog_is_embedded(server):
        db = server.storage / "catalog.db"
        wal = Path(f"{db}-wal")
        return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return int(catalog_rows(server, "SELECT pg_database_size(current_database())")[0][0])


def quarantined(server: ServerHandle) -> list[str]:
    """The names in the server's quarantine: files of quarantine/, or keys under the bucket's
    <prefix>quarantine/ in S3 mode."""
    place = bucket_of(server)
    if place is None:
        folder = server.storage / "quarantine"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    pages = place.client().get_paginator("list_objects_v2").paginate(
        Bucket=place.bucket, Prefix=f"{place.prefix}quarantine/")
    return sorted(o["Key"].rsplit("/", 1)[-1] for page in pages for o in page.get("Contents", []))
