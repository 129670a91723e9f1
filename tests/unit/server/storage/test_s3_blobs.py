"""What only the S3 backend does: parts of at least 5 MiB recorded in the catalog's ledger,
staging keys that never outlive a commit, verification by reading back when the hash computed
while streaming was lost with a restart, and the content-addressed key layout."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable

import pytest

from photonic import errors
from photonic.models import ContentHash
from photonic.server.storage.s3 import STAT_CONCURRENCY
from tests.unit.server.storage.conftest import PART, S3World

CHUNK = 4 * 1024 * 1024


def sha(data: bytes) -> ContentHash:
    return ContentHash(hashlib.sha256(data).hexdigest())


def test_objects_are_content_addressed_under_the_prefix(s3_world: S3World) -> None:
    data = os.urandom(1000)
    s3_world.store.put(sha(data), data)
    h = sha(data)
    assert s3_world.endpoint.keys(s3_world.bucket) == [f"studio/objects/{h[:2]}/{h[2:4]}/{h}"]


def test_chunks_are_buffered_into_parts_of_at_least_5_mib(s3_world: S3World) -> None:
    data = os.urandom(3 * CHUNK + 100)
    up = s3_world.store.partial(sha(data), len(data), resume=False)
    up.append(data[:CHUNK])
    assert s3_world.catalog.multipart_of(sha(data)) is None, "4 MiB is no part yet"
    up.append(data[CHUNK:2 * CHUNK])
    state = s3_world.catalog.multipart_of(sha(data))
    assert state is not None and [p.size for p in state.parts] == [2 * CHUNK]
    up.append(data[2 * CHUNK:])
    up.finish()
    state = s3_world.catalog.multipart_of(sha(data))
    assert state is not None and [p.size for p in state.parts] == [2 * CHUNK, CHUNK + 100]
    s3_world.store.commit(up)
    assert s3_world.catalog.multipart_of(sha(data)) is None
    assert s3_world.endpoint.keys(s3_world.bucket, "studio/staging/") == [], "staging cleaned"
    assert s3_world.endpoint.multipart_uploads(s3_world.bucket) == []
    assert s3_world.endpoint.read(s3_world.bucket, s3_world.store.object_key(sha(data))) == data


def test_content_of_one_part_or_less_starts_no_multipart_upload(s3_world: S3World) -> None:
    data = os.urandom(PART)
    up = s3_world.store.partial(sha(data), len(data), resume=False)
    up.append(data[:CHUNK])
    up.append(data[CHUNK:])
    up.finish()
    assert not s3_world.store.has(sha(data)), "nothing is visible before the commit"
    s3_world.store.commit(up)
    assert s3_world.catalog.multipart_of(sha(data)) is None
    assert s3_world.endpoint.multipart_uploads(s3_world.bucket) == []
    assert s3_world.store.check(sha(data)).intact


def test_a_small_upload_is_one_put_that_repairs_an_altered_object(
        s3_world: S3World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Content of one part or less is committed by one PUT, without a HEAD first; an object
    already at its address that was altered behind photonic's back is replaced by the
    verified bytes, not kept because a name was there."""
    store = s3_world.store
    data = os.urandom(10_000)
    store.client.put(store.object_key(sha(data)), b"altered" + data[7:], sha(data))
    requests: list[str] = []

    def counted(name: str) -> Callable[..., object]:
        real = getattr(store.client, name)

        def call(*args: object, **kwargs: object) -> object:
            requests.append(name)
            return real(*args, **kwargs)
        return call

    for name in ("head", "put", "copy"):
        monkeypatch.setattr(store.client, name, counted(name))
    up = store.partial(sha(data), len(data), resume=False)
    up.append(data)
    up.finish()
    store.commit(up)
    assert requests == ["put"]
    assert s3_world.endpoint.read(s3_world.bucket, store.object_key(sha(data))) == data


def test_stat_many_asks_for_many_objects_at_once(
        s3_world: S3World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A manifest's known contents are looked up in parallel: four lookups must be in flight
    together before any of them may return (a store asking one at a time breaks the barrier
    and fails), and never more than STAT_CONCURRENCY."""
    store = s3_world.store
    wanted = [sha(os.urandom(100)) for _ in range(40)]
    together = threading.Barrier(4, timeout=10)
    in_flight = 0
    most = 0
    lock = threading.Lock()
    real_head = store.client.head

    def head(key: str) -> object:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        try:
            with contextlib.suppress(threading.BrokenBarrierError):
                if key.endswith(tuple(wanted[:4])):
                    together.wait()
            return real_head(key)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(store.client, "head", head)
    assert store.stat_many(wanted) == dict.fromkeys(wanted)
    assert not together.broken
    assert 4 <= most <= STAT_CONCURRENCY


def _park_after_two_chunks(s3_world: S3World, data: bytes, claimed: ContentHash) -> None:
    up = s3_world.store.partial(claimed, len(data), resume=False)
    up.append(data[:CHUNK])
    up.append(data[CHUNK:2 * CHUNK])
    up.append(data[2 * CHUNK:2 * CHUNK + 1000])
    assert up.park()


def test_a_resume_after_a_restart_is_verified_by_reading_back(s3_world: S3World) -> None:
    data = os.urandom(3 * CHUNK)
    _park_after_two_chunks(s3_world, data, sha(data))
    restarted = s3_world.reopen()
    assert restarted.partial_offset(sha(data)) == 2 * CHUNK
    up = restarted.partial(sha(data), len(data))
    assert up.offset == 2 * CHUNK
    up.append(data[2 * CHUNK:])
    up.finish()
    restarted.commit(up)
    assert restarted.check(sha(data)).intact
    assert s3_world.endpoint.keys(s3_world.bucket, "studio/staging/") == []


def test_a_resumed_upload_whose_bytes_are_wrong_leaves_nothing_behind(s3_world: S3World
                                                                      ) -> None:
    data = os.urandom(3 * CHUNK)
    claimed = sha(b"what the agent said it was sending")
    _park_after_two_chunks(s3_world, data, claimed)
    restarted = s3_world.reopen()
    up = restarted.partial(claimed, len(data))
    up.append(data[2 * CHUNK:])
    with pytest.raises(errors.IntegrityError):
        up.finish()
    assert not restarted.has(claimed), "nothing at the content address"
    assert s3_world.endpoint.keys(s3_world.bucket) == [], "no staging object either"
    assert s3_world.endpoint.multipart_uploads(s3_world.bucket) == []
    assert restarted.partial_offset(claimed) == 0


def test_a_superseded_multipart_upload_is_aborted(s3_world: S3World) -> None:
    data = os.urandom(3 * CHUNK)
    _park_after_two_chunks(s3_world, data, sha(data))
    before = s3_world.endpoint.multipart_uploads(s3_world.bucket)
    assert len(before) == 1
    up = s3_world.store.partial(sha(data), len(data) + 1, resume=True)  # another size
    assert up.offset == 0
    assert s3_world.endpoint.multipart_uploads(s3_world.bucket) == []


def test_an_upload_completed_by_a_server_that_died_before_its_commit_is_finished(
        s3_world: S3World) -> None:
    data = os.urandom(2 * CHUNK + 10)
    up = s3_world.store.partial(sha(data), len(data), resume=False)
    for at in range(0, len(data), CHUNK):
        up.append(data[at:at + CHUNK])
    up.finish()  # completed into staging; the server dies before commit
    restarted = s3_world.reopen()
    assert restarted.partial_offset(sha(data)) == len(data)
    again = restarted.partial(sha(data), len(data))
    again.finish()
    restarted.commit(again)
    assert restarted.check(sha(data)).intact
    assert s3_world.endpoint.keys(s3_world.bucket, "studio/staging/") == []


def test_recover_cleans_orphans_the_ledger_does_not_know(s3_world: S3World) -> None:
    client = s3_world.endpoint.client()
    client.create_multipart_upload(Bucket=s3_world.bucket, Key="studio/staging/x/orphan")
    client.put_object(Bucket=s3_world.bucket, Key="studio/staging/y/left", Body=b"left")
    data = os.urandom(3 * CHUNK)
    _park_after_two_chunks(s3_world, data, sha(data))  # known to the ledger: kept
    s3_world.store.recover(min_age_s=3600)
    # (moto dates every multipart upload long ago, so only the object's age is telling here)
    assert s3_world.endpoint.keys(s3_world.bucket, "studio/staging/y/") != [], \
        "a young staging object may be another server's commit under way"
    s3_world.store.recover(min_age_s=0)
    uploads = s3_world.endpoint.multipart_uploads(s3_world.bucket)
    kept = s3_world.catalog.multipart_of(sha(data))
    assert kept is not None and [u["Key"] for u in uploads] == [kept.staging_key]
    assert s3_world.endpoint.keys(s3_world.bucket, "studio/staging/") == []


def test_recover_forgets_an_upload_of_content_stored_meanwhile(s3_world: S3World) -> None:
    """A parked upload whose content another upload then stored (another server finished it
    while this one was down): recovery at start aborts it and forgets it in the ledger, on
    either catalog engine, and the stored object is untouched."""
    data = os.urandom(3 * CHUNK)
    _park_after_two_chunks(s3_world, data, sha(data))
    other = s3_world.reopen()
    whole = other.partial(sha(data), len(data), resume=False)  # supersedes, as a new upload
    s3_world.catalog.begin_multipart(sha(data), len(data), "studio/staging/x/y", "stale-id")
    whole.append(data)
    whole.finish()
    other.commit(whole)
    assert s3_world.catalog.multipart_of(sha(data)) is not None
    assert s3_world.store.recover(min_age_s=3600) >= 1
    assert s3_world.catalog.multipart_of(sha(data)) is None
    assert s3_world.endpoint.read(
        s3_world.bucket, s3_world.store.object_key(sha(data))) == data
