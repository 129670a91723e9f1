"""The storage backend every test server runs on, chosen by one switch, PHOTONIC_TEST_BACKEND:

- `embedded` (unset: the default): the SQLite catalog and job queue and the local object store
  under storage_path, as a server has them out of the box;
- `postgresql`: every server's catalog in a fresh PostgreSQL database (job queue in jobs.db);
- `scaleout`: the scale-out installation of issue #20, every server's catalog and job queue in
  a fresh PostgreSQL database and its objects in a fresh bucket of this test process's moto
  S3 server (`storage.objects: s3://…`), credentials in the daemons' environment.

A test that configures its own catalog.url, jobs.queue_url or storage.objects keeps it. A
server that is a replication primary keeps the embedded catalog and local objects (replication
needs both; the server refuses it otherwise). Tests about a local-only feature carry
`@pytest.mark.local_objects("why")` and are skipped under `scaleout`, saying so."""

from __future__ import annotations

import atexit
import logging
import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.support.s3 import S3Endpoint

TEST_BACKEND_ENV = "PHOTONIC_TEST_BACKEND"
S3_PREFIX = "photonic/"
"""The key prefix of every bucket the switch makes (a prefix, so keys are not at the root)."""


class TestBackend(StrEnum):
    EMBEDDED = "embedded"
    POSTGRESQL = "postgresql"
    SCALEOUT = "scaleout"


def test_backend() -> TestBackend:
    """The backend this test process runs its servers on; an unknown value fails loudly (a
    typo must not run the default suite while claiming to test another)."""
    value = os.environ.get(TEST_BACKEND_ENV, "") or TestBackend.EMBEDDED.value
    try:
        return TestBackend(value)
    except ValueError:
        names = ", ".join(b.value for b in TestBackend)
        raise RuntimeError(f"{TEST_BACKEND_ENV}={value!r}: expected one of {names}") from None


test_backend.__test__ = False  # type: ignore[attr-defined]  # not a test, whatever its name
TestBackend.__test__ = False  # type: ignore[attr-defined]


def objects_in_s3() -> bool:
    return test_backend() is TestBackend.SCALEOUT


def catalog_in_postgresql() -> bool:
    """Whether the servers the tests start share state (upload claims, the library lock, the
    event hub) through PostgreSQL, as they do whenever their catalog is there."""
    return test_backend() is not TestBackend.EMBEDDED


def apply_backend(config: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """Points config (a server.yaml being written) at this process's backend. previous is the
    server.yaml this one replaces, if any: a server whose config a test rewrites keeps its
    database and bucket, as a real reconfigured server keeps its data."""
    backend = test_backend()
    storage = config["storage"]
    if backend is TestBackend.EMBEDDED or storage.get("backup_nodes"):
        return
    old = previous or {}
    if "catalog" not in config:
        config["catalog"] = old.get("catalog") or {"url": _fresh_database()}
    jobs = config.setdefault("jobs", {})
    if backend is TestBackend.POSTGRESQL:
        # The job queue stays in jobs.db, which tests read, unless a test names its own.
        root = Path(config["server"]["storage_path"]).resolve()
        jobs.setdefault("queue_url", f"sqlite://{root / 'jobs.db'}")
        return
    if "objects" not in storage and not _local_only_keys(config):
        old_storage = old.get("storage") or {}
        if str(old_storage.get("objects", "")).startswith("s3://"):
            storage["objects"], storage["s3"] = old_storage["objects"], old_storage["s3"]
        else:
            endpoint = process_s3()
            # Servers that share one catalog share one bucket, as a scale-out install does.
            url = str(config["catalog"].get("url", ""))
            if url not in _buckets:
                _buckets[url] = f"s3://{endpoint.new_bucket()}/{S3_PREFIX}"
            storage["objects"] = _buckets[url]
            storage["s3"] = {"endpoint_url": endpoint.url, "region": "us-east-1"}


def _local_only_keys(config: dict[str, Any]) -> bool:
    """Keys the server refuses with s3:// objects (photonic/config.py _refuse_local_only): a
    test that sets one is about that local feature and carries the local_objects marker."""
    storage, server = config.get("storage", {}), config.get("server", {})
    return bool(storage.get("scrub_interval") or storage.get("repair_from")
                or server.get("role") not in (None, "primary") or server.get("nfs_export"))


def _fresh_database() -> str:
    from tests.support.postgres import process_database_url
    return process_database_url()


_process_s3: S3Endpoint | None = None
_buckets: dict[str, str] = {}
"""storage.objects of each catalog URL this process configured servers on."""


def process_s3() -> S3Endpoint:
    """This test process's own moto S3 server, started at the first call and stopped when the
    process exits (daemons.py's helpers are no fixtures, so no session fixture can own it)."""
    global _process_s3
    if _process_s3 is None:
        from moto.server import ThreadedMotoServer

        from tests.support.daemons import free_port
        from tests.support.s3 import S3Endpoint
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        _process_moto.append(server)
        atexit.register(stop_process_s3)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line a request otherwise
        _process_s3 = S3Endpoint(f"http://127.0.0.1:{port}")
    return _process_s3


_process_moto: list[Any] = []


def stop_process_s3() -> None:
    """Stops this process's moto server, if it has one (the end of the session calls it: a
    pytest -n worker may end without running atexit)."""
    global _process_s3
    _process_s3 = None
    while _process_moto:
        _process_moto.pop().stop()


def s3_environment() -> dict[str, str]:
    """What the AWS SDK in a daemon reads to reach the tests' moto server: test credentials,
    and no shared file or instance role that could answer instead."""
    from tests.support.s3 import CREDENTIALS
    return {**CREDENTIALS, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_CONFIG_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}


def daemon_environment() -> dict[str, str]:
    """Variables every daemon and CLI process the tests start gets for this backend."""
    return s3_environment() if objects_in_s3() else {}


def skip_local_only(item: pytest.Item) -> None:
    """Skips a test marked local_objects(reason) when objects are in S3, with its reason."""
    marker = item.get_closest_marker("local_objects")
    if marker is not None and objects_in_s3():
        why = marker.args[0] if marker.args else "the test reads the local object store"
        pytest.skip(f"local object store only: {why}")
