"""Both BlobStore backends, each on its own fresh storage: the local filesystem store and an
S3 store on a fresh bucket of the session's moto server (tests/support/s3.py), whose
multipart ledger is a catalog on either engine (the `catalogs` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from photonic._configobjects import S3Settings
from photonic.server.catalog import Catalog, SqliteCatalog
from photonic.server.storage.blobs import BlobStore
from photonic.server.storage.local import LocalBlobStore
from photonic.server.storage.s3 import MIN_PART_BYTES, S3BlobStore
from photonic.server.storage.s3_client import S3Client
from photonic.server.store import ContentStore
from tests.support.catalogs import Catalogs
from tests.support.s3 import S3Endpoint, s3_endpoint  # noqa: F401

PART = MIN_PART_BYTES


@dataclass
class S3World:
    endpoint: S3Endpoint
    bucket: str
    prefix: str
    catalog: Catalog
    store: S3BlobStore

    def reopen(self) -> S3BlobStore:
        """The same bucket and ledger through a new store: a restarted server, which lost
        every hash it computed."""
        return S3BlobStore(S3Client(S3Settings(self.bucket, self.prefix, self.endpoint.url,
                                               "us-east-1")),
                           self.prefix, self.catalog, part_size_bytes=PART)


def make_world(endpoint: S3Endpoint, catalog: Catalog) -> S3World:
    bucket = endpoint.new_bucket()
    prefix = "studio/"
    store = S3BlobStore(S3Client(S3Settings(bucket, prefix, endpoint.url, "us-east-1")),
                        prefix, catalog, part_size_bytes=PART)
    return S3World(endpoint, bucket, prefix, catalog, store)


@pytest.fixture
def s3_world(tmp_path: Path, s3_endpoint: S3Endpoint,  # noqa: F811
             catalogs: Catalogs) -> S3World:
    """An S3 store whose ledger is a catalog on either engine."""
    return make_world(s3_endpoint, catalogs.new(tmp_path))


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """The contract's two backends (the S3 store's ledger on the embedded catalog: the
    ledger's own tests run on both engines through s3_world)."""
    if request.param == "local":
        yield LocalBlobStore(ContentStore(tmp_path / "storage"))
        return
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    yield make_world(request.getfixturevalue("s3_endpoint"), catalog).store
    catalog.close()
