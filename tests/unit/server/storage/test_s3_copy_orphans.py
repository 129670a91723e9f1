"""Commit copies a staging object to its content address with one atomic CopyObject, so a
server killed mid-copy leaves no incomplete multipart upload there (found by the two-server
chaos test: the SDK's managed copy of an 18 MB RAW, cut by SIGKILL, stayed in the bucket
for good); objects over CopyObject's 5 GiB limit still copy in parts, and recover() aborts
such a copy's leftover at a content address or in quarantine/, never an upload outside
photonic's own folders."""

from __future__ import annotations

import hashlib
import os

import pytest

from photonic.models import ContentHash
from photonic.server.storage import s3_client
from tests.unit.server.storage.conftest import S3World

CHUNK = 4 * 1024 * 1024


def _committed(s3_world: S3World) -> tuple[bytes, str]:
    """Content of two parts, uploaded and committed; (its bytes, its object key)."""
    data = os.urandom(2 * CHUNK + 100)
    sha = ContentHash(hashlib.sha256(data).hexdigest())
    up = s3_world.store.partial(sha, len(data), resume=False)
    for at in range(0, len(data), CHUNK):
        up.append(data[at:at + CHUNK])
    up.finish()
    s3_world.store.commit(up)
    return data, s3_world.store.object_key(sha)


@pytest.mark.parametrize("atomic_limit", [s3_client.MAX_ATOMIC_COPY_BYTES, 0],
                         ids=["copy-object", "managed-multipart-copy"])
def test_both_copies_put_the_whole_object_at_its_address_and_leave_nothing(
        s3_world: S3World, monkeypatch: pytest.MonkeyPatch, atomic_limit: int) -> None:
    """Whichever way the size sends it, the object is byte for byte the staging object and
    no staging key or multipart upload is left."""
    monkeypatch.setattr(s3_client, "MAX_ATOMIC_COPY_BYTES", atomic_limit)
    data, key = _committed(s3_world)
    assert s3_world.endpoint.read(s3_world.bucket, key) == data
    assert s3_world.endpoint.keys(s3_world.bucket) == [key]
    assert s3_world.endpoint.multipart_uploads(s3_world.bucket) == []


def _cut_copy(s3_world: S3World, key: str) -> str:
    """What a managed copy killed after its first part leaves: an upload at key."""
    client = s3_world.endpoint.client()
    upload = client.create_multipart_upload(Bucket=s3_world.bucket, Key=key)["UploadId"]
    client.upload_part(Bucket=s3_world.bucket, Key=key, UploadId=upload, PartNumber=1,
                       Body=b"x" * 1000)
    return str(upload)


def test_recover_aborts_a_cut_copy_at_a_content_address_or_in_quarantine(
        s3_world: S3World) -> None:
    """Neither is in the ledger (only uploads under staging/ are): both are orphans; the
    object already stored at that address is untouched."""
    data, key = _committed(s3_world)
    _cut_copy(s3_world, key)
    _cut_copy(s3_world, "studio/quarantine/abc.20260101T000000Z.0000")
    assert s3_world.store.recover(min_age_s=0) == 2
    assert s3_world.endpoint.multipart_uploads(s3_world.bucket) == []
    assert s3_world.endpoint.read(s3_world.bucket, key) == data


def test_recover_leaves_uploads_outside_photonics_folders_alone(s3_world: S3World) -> None:
    """A bucket may be shared: an upload beside the prefix, or in another folder under it,
    is someone else's."""
    _cut_copy(s3_world, "other-app/big.bin")
    _cut_copy(s3_world, "studio/exports/big.bin")
    assert s3_world.store.recover(min_age_s=0) == 0
    assert len(s3_world.endpoint.multipart_uploads(s3_world.bucket)) == 2
