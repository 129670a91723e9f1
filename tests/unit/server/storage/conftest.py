"""Both BlobStore backends, each on its own fresh storage: the local filesystem store and an
S3 store on a fresh bucket of the session's moto server (tests/support/s3.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from photonic._configobjects import S3Settings
from photonic.server.catalog import SqliteCatalog
from photonic.server.storage.blobs import BlobStore
from photonic.server.storage.local import LocalBlobStore
from photonic.server.storage.s3 import MIN_PART_BYTES, S3BlobStore
from photonic.server.storage.s3_client import S3Client
from photonic.server.store import ContentStore
from tests.support.s3 import S3Endpoint, s3_endpoint  # noqa: F401

PART = MIN_PART_BYTES


@dataclass
class S3World:
    endpoint: S3Endpoint
    bucket: str
    prefix: str
    catalog: SqliteCatalog
    store: S3BlobStore

    def reopen(self) -> S3BlobStore:
        """The same bucket and ledger through a new store: a restarted server, which lost
        every hash it computed."""
        return S3BlobStore(S3Client(S3Settings(self.bucket, self.prefix, self.endpoint.url,
                                               "us-east-1")),
                           self.prefix, self.catalog, part_size_bytes=PART)


@pytest.fixture
def s3_world(tmp_path: Path, s3_endpoint: S3Endpoint) -> Iterator[S3World]:  # noqa: F811
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    bucket = s3_endpoint.new_bucket()
    prefix = "studio/"
    store = S3BlobStore(S3Client(S3Settings(bucket, prefix, s3_endpoint.url, "us-east-1")),
                        prefix, catalog, part_size_bytes=PART)
    yield S3World(s3_endpoint, bucket, prefix, catalog, store)
    catalog.close()


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(ContentStore(tmp_path / "storage"))
    world: S3World = request.getfixturevalue("s3_world")
    return world.store
