"""The tests' S3 endpoint: moto's standalone server (ThreadedMotoServer) on a free loopback
port, for the whole session. No S3 server (MinIO, SeaweedFS, Garage) is installable here, so
moto stands in for one; photonic talks to it through the same boto3 code path it uses against
AWS, with only storage.s3.endpoint_url pointing here. Credentials reach the SDK the usual way,
through the environment (which the daemons the tests start inherit)."""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

REGION = "us-east-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "photonic-test",
    "AWS_SECRET_ACCESS_KEY": "photonic-test-secret",
    "AWS_DEFAULT_REGION": REGION,
}
_buckets = itertools.count(1)


@functools.cache
def test_client(endpoint_url: str) -> Any:
    """A boto3 S3 client of the tests' own, on endpoint_url with the test credentials (passed
    in, so it works whatever the test process's environment holds). One per endpoint, made
    once: making a client costs about 250 ms here, and the chaos verification reads every
    object of a bucket twice a second while it polls (boto3 clients are thread-safe)."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ).client("s3", endpoint_url=endpoint_url, region_name=REGION)


test_client.__test__ = False  # type: ignore[attr-defined]  # a helper, whatever its name


@dataclass
class S3Endpoint:
    url: str

    def client(self) -> Any:
        return test_client(self.url)

    def new_bucket(self) -> str:
        """A fresh, empty bucket: each test its own."""
        name = f"photonic-test-{os.getpid()}-{next(_buckets)}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                         Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def read(self, bucket: str, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=bucket, Key=key)["Body"].read())

    def multipart_uploads(self, bucket: str) -> list[dict[str, Any]]:
        return list(self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    """This test process's moto server (backend.process_s3, which a scaleout run's servers
    use too), with the test credentials in the environment for the session."""
    try:
        import moto.server  # noqa: F401
    except ImportError:  # pragma: no cover - make test-deps installs it
        pytest.skip("moto[server] is not installed (make test-deps)")
    from tests.support.backend import process_s3
    with pytest.MonkeyPatch.context() as mp:
        for name, value in CREDENTIALS.items():
            mp.setenv(name, value)
        # No shared file or instance role may answer instead of the variables above.
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield process_s3()
