"""The engines the scale-out figures run photonic on, started by the bench itself: a
throwaway PostgreSQL 15 cluster (tests/support/postgres.py: initdb/pg_ctl in a folder of its
own, a unix socket only, PostgreSQL's default settings, fsync included) and moto's S3 server in
a process of its own (bench/moto_endpoint.py). Both report their CPU, so each figure can say
what the catalog and the object store cost beside photonic's own processes.

The AWS SDK in the photonic servers finds the endpoint's credentials the usual way, in the
environment the bench hands its children (`aws_environment`)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.peers.base import free_port, port_open
from bench.peers.photonic import stop_process
from bench.procstat import ProcUsage, tree_usage, wait_until
from tests.support.environ import environment
from tests.support.postgres import PgCluster, cluster_at, init_cluster

REGION = "us-east-1"
S3_PREFIX = "bench"
_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "photonic-bench",
    "AWS_SECRET_ACCESS_KEY": "photonic-bench-secret",
    "AWS_DEFAULT_REGION": REGION,
    # No shared file or instance role may answer instead of the variables above.
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_BENCH_ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def aws_environment() -> Iterator[None]:
    """The endpoint's credentials in this process's environment (which every photonic server
    the bench starts inherits) while the scale-out figures run; restored afterwards."""
    with environment(_CREDENTIALS):
        yield


class PgService:
    """A started PostgreSQL cluster in `root` (fresh by initdb, or a cached data folder copied
    in first: `from_data`); databases made on demand; stopped and left to the caller's
    folder clean-up by close()."""

    def __init__(self, cluster: PgCluster) -> None:
        self.cluster = cluster
        self._numbers = itertools.count(1)

    @classmethod
    def fresh(cls, root: Path) -> PgService:
        cluster = init_cluster(root)
        cluster.start()
        return cls(cluster)

    @classmethod
    def from_data(cls, data: Path, root: Path) -> PgService:
        """A copy of a stopped cluster's data folder (owner and modes kept), started."""
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", "--reflink=auto", str(data), str(root / "data")],
                       check=True, timeout=3600)
        cluster = cluster_at(root)
        cluster.start()
        return cls(cluster)

    def new_database(self, prefix: str = "bench") -> str:
        """The URL of a fresh, empty database."""
        name = f"{prefix}_{next(self._numbers)}"
        self.cluster.execute(f"CREATE DATABASE {name}")
        return self.cluster.url(name)

    def postmaster_pid(self) -> int:
        return int((self.cluster.root / "data" / "postmaster.pid").read_text().split()[0])

    def usage(self) -> ProcUsage:
        """The postmaster and every backend alive now (a backend that exited is in the
        postmaster's reaped children)."""
        return tree_usage(self.postmaster_pid())

    def close(self) -> None:
        self.cluster.stop()


@dataclass
class S3Object:
    key: str
    size: int


class MotoService:
    """moto's S3 server in its own process on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.moto_endpoint", "--port", str(self.port)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=_BENCH_ROOT)
        self._buckets = itertools.count(1)
        wait_until(self._up, timeout_s=60, what="moto's S3 server to listen")

    def _up(self) -> bool:
        if self._proc.poll() is not None:
            raise RuntimeError(f"moto's S3 server exited with {self._proc.returncode}")
        return port_open(self.port)

    def client(self) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id=_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        ).client("s3", endpoint_url=self.url, region_name=REGION)

    def new_bucket(self) -> str:
        name = f"photonic-bench-{next(self._buckets)}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str, prefix: str = "") -> list[S3Object]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                         Prefix=prefix)
        return [S3Object(o["Key"], int(o["Size"])) for page in pages
                for o in page.get("Contents", [])]

    def delete_bucket(self, bucket: str) -> None:
        """Frees the memory moto holds for a bucket's objects (a run's are not needed after)."""
        client = self.client()
        for obj in self.objects(bucket):
            client.delete_object(Bucket=bucket, Key=obj.key)
        client.delete_bucket(Bucket=bucket)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def usage(self) -> ProcUsage:
        return tree_usage(self._proc.pid)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        stop_process(self._proc, grace_s=10)


def s3_settings(endpoint: MotoService, bucket: str) -> dict[str, object]:
    """server.yaml `storage:` keys for objects in the bucket on the endpoint."""
    return {"objects": f"s3://{bucket}/{S3_PREFIX}",
            "s3": {"endpoint_url": endpoint.url, "region": REGION}}


def object_key(sha256: str) -> str:
    """Where photonic keeps a content in the bucket (content-addressed, immutable)."""
    return f"{S3_PREFIX}/objects/{sha256[:2]}/{sha256[2:4]}/{sha256}"
