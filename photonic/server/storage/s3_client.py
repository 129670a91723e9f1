"""The one module the AWS SDK for Python (boto3) enters through: a client built from the
standard credential chain (environment, shared credentials file, instance role; never signed
by hand), the few S3 calls photonic makes, typed, and the SDK's failures turned into
photonic's own errors, so a refusal names what failed without a traceback or a key."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from photonic import errors
from photonic._configobjects import S3Settings

MAX_POOL_CONNECTIONS = 32
"""As many as the server's I/O threads (app.IO_THREADS): each may hold one request."""
READ_BLOCK_BYTES = 1 << 20
MAX_ATOMIC_COPY_BYTES = 5 * 1024 ** 3
"""S3's largest CopyObject; larger objects are copied in parts."""

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


@dataclass(frozen=True)
class HeadResult:
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ListedUpload:
    key: str
    upload_id: str
    initiated_s: float


@dataclass(frozen=True)
class ListedObject:
    key: str
    modified_s: float


def is_missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code", "")) in _MISSING


def _refused(exc: ClientError, doing: str) -> errors.Transient:
    code = exc.response.get("Error", {}).get("Code", "?")
    return errors.Transient(f"the object store refused to {doing} ({code}); it will be tried "
                            "again")


@contextlib.contextmanager
def s3_errors(doing: str) -> Iterator[None]:
    """SDK failures as Transient: the store did not answer as it should (network, throttling,
    credentials); the work is retried, nothing is acknowledged."""
    try:
        yield
    except ClientError as exc:
        raise _refused(exc, doing) from None
    except BotoCoreError as exc:
        raise _unreachable(exc, doing) from None


def _unreachable(exc: BotoCoreError, doing: str) -> errors.Transient:
    return errors.Transient(f"the object store could not be reached to {doing} "
                            f"({type(exc).__name__}); it will be tried again")


class S3Client:
    """A bucket, through one thread-safe boto3 client."""

    def __init__(self, settings: S3Settings) -> None:
        self.bucket = settings.bucket
        session = boto3.session.Session()
        self._s3: Any = session.client(
            "s3", endpoint_url=settings.endpoint_url, region_name=settings.region,
            config=Config(max_pool_connections=MAX_POOL_CONNECTIONS,
                          retries={"max_attempts": 5, "mode": "standard"}))

    def head(self, key: str) -> HeadResult | None:
        try:
            r = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise _refused(exc, "look an object up") from None
        except BotoCoreError as exc:
            raise _unreachable(exc, "look an object up") from None
        return HeadResult(int(r["ContentLength"]), int(r["LastModified"].timestamp() * 1e9))

    def read(self, key: str, offset: int, length: int) -> bytes:
        """length bytes from offset (fewer at the end); NotFound when the key is gone."""
        if length <= 0:
            return b""
        try:
            r = self._s3.get_object(Bucket=self.bucket, Key=key,
                                    Range=f"bytes={offset}-{offset + length - 1}")
        except ClientError as exc:
            if is_missing(exc):
                raise errors.NotFound("the object is gone from the object store") from None
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""
            raise _refused(exc, "read an object") from None
        except BotoCoreError as exc:
            raise _unreachable(exc, "read an object") from None
        with s3_errors("read an object"):
            return bytes(r["Body"].read())

    def blocks(self, key: str) -> Iterator[bytes]:
        """The whole object in blocks, streamed (for re-hashing)."""
        with s3_errors("read an object"):
            r = self._s3.get_object(Bucket=self.bucket, Key=key)
            yield from r["Body"].iter_chunks(READ_BLOCK_BYTES)

    def put(self, key: str, data: bytes, sha256: str) -> None:
        with s3_errors("store an object"):
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=data,
                                Metadata={"sha256": sha256})

    def copy(self, source: str, target: str, size_bytes: int) -> None:
        """A server-side copy: no byte crosses this server. One CopyObject up to S3's limit
        for it, because it is atomic: a server killed mid-copy leaves nothing at target. The
        SDK's managed copy (a multipart upload at target, parts copied in parallel) is kept
        for larger objects only: killed mid-copy, it leaves an incomplete multipart upload
        at target, which only recover() aborts."""
        source_ref = {"Bucket": self.bucket, "Key": source}
        with s3_errors("copy an object"):
            if size_bytes <= MAX_ATOMIC_COPY_BYTES:
                self._s3.copy_object(Bucket=self.bucket, Key=target, CopySource=source_ref)
            else:
                self._s3.copy(source_ref, self.bucket, target)

    def delete(self, key: str) -> None:
        with s3_errors("delete an object"):
            self._s3.delete_object(Bucket=self.bucket, Key=key)

    def create_multipart(self, key: str, sha256: str) -> str:
        with s3_errors("start a multipart upload"):
            r = self._s3.create_multipart_upload(Bucket=self.bucket, Key=key,
                                                 Metadata={"sha256": sha256})
        return str(r["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        with s3_errors("upload a part"):
            r = self._s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                     PartNumber=number, Body=data)
        return str(r["ETag"])

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]
                           ) -> None:
        """NotFound when the upload is gone: completed earlier (a crash before its commit
        finished) or aborted."""
        try:
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]})
        except ClientError as exc:
            if is_missing(exc):
                raise errors.NotFound("the multipart upload is gone") from None
            raise _refused(exc, "complete a multipart upload") from None
        except BotoCoreError as exc:
            raise _unreachable(exc, "complete a multipart upload") from None

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Aborts; an upload already gone (completed or aborted) is no error."""
        try:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if not is_missing(exc):
                raise _refused(exc, "abort a multipart upload") from None
        except BotoCoreError as exc:
            raise _unreachable(exc, "abort a multipart upload") from None

    def multipart_uploads(self, prefix: str) -> Iterator[ListedUpload]:
        with s3_errors("list multipart uploads"):
            pages = self._s3.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for u in page.get("Uploads", []):
                    yield ListedUpload(str(u["Key"]), str(u["UploadId"]),
                                       u["Initiated"].timestamp())

    def objects(self, prefix: str) -> Iterator[ListedObject]:
        with s3_errors("list objects"):
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                       Prefix=prefix)
            for page in pages:
                for o in page.get("Contents", []):
                    yield ListedObject(str(o["Key"]), o["LastModified"].timestamp())
