"""The BlobStore contract, run against both backends: what the ingest, the jobs and the
readers rely on, whichever store holds the bytes."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from photonic import errors
from photonic.models import ContentHash
from photonic.server.storage.blob_file import open_as_file, open_blob
from photonic.server.storage.blobs import BlobStore
from photonic.server.storage.local import LocalBlobStore
from photonic.server.store import ContentStore
from tests.unit.server.storage.conftest import PART

CHUNK = 4 * 1024 * 1024  # the agent's chunk size


def sha(data: bytes) -> ContentHash:
    return ContentHash(hashlib.sha256(data).hexdigest())


def upload(blobs: BlobStore, data: bytes, *, start: int = 0, resume: bool = False) -> None:
    up = blobs.partial(sha(data), len(data), resume=resume)
    assert up.offset == start
    for at in range(start, len(data), CHUNK):
        up.append(data[at:at + CHUNK])
    up.finish()
    blobs.commit(up)


def test_put_has_stat_and_ranged_reads(blobs: BlobStore) -> None:
    data = os.urandom(100_000)
    assert not blobs.has(sha(data)) and blobs.stat(sha(data)) is None
    blobs.put(sha(data), data)
    assert blobs.has(sha(data))
    st = blobs.stat(sha(data))
    assert st is not None and st.size == len(data)
    reader = blobs.open(sha(data))
    try:
        assert reader.size == len(data)
        assert reader.read_at(0, 10) == data[:10]
        assert reader.read_at(50_000, 1234) == data[50_000:51_234]
        assert reader.read_at(99_990, 100) == data[99_990:], "short only at the end"
        assert reader.read_at(len(data), 10) == b""
    finally:
        reader.close()


def test_open_of_a_missing_object_is_not_found(blobs: BlobStore) -> None:
    with pytest.raises(errors.NotFound):
        blobs.open("a" * 64)
    with pytest.raises(errors.NotFound):
        blobs.open("not-a-hash")


def test_put_refuses_bytes_that_are_not_the_content(blobs: BlobStore) -> None:
    data = b"x" * 1000
    with pytest.raises(errors.IntegrityError):
        blobs.put(sha(b"other"), data)
    assert not blobs.has(sha(b"other"))


@pytest.mark.parametrize("size", [1, 3 * 1024 * 1024, 2 * PART + 12345])
def test_an_upload_in_chunks_becomes_the_object(blobs: BlobStore, size: int) -> None:
    data = os.urandom(size)
    upload(blobs, data)
    assert blobs.has(sha(data))
    reader = blobs.open(sha(data))
    assert reader.read_at(0, size) == data
    reader.close()
    assert blobs.check(sha(data)).intact
    assert blobs.partial_offset(sha(data)) == 0, "nothing left to resume"


def test_content_that_does_not_hash_to_its_name_is_never_stored(blobs: BlobStore) -> None:
    data = os.urandom(2 * PART + 100)
    claimed = sha(b"something else")
    up = blobs.partial(claimed, len(data), resume=False)
    for at in range(0, len(data), CHUNK):
        up.append(data[at:at + CHUNK])
    with pytest.raises(errors.IntegrityError):
        up.finish()
    assert up.closed and not up.finished
    assert not blobs.has(claimed)
    assert blobs.partial_offset(claimed) == 0


def test_a_short_upload_is_refused_at_finish(blobs: BlobStore) -> None:
    data = os.urandom(1000)
    up = blobs.partial(sha(data), len(data) + 1, resume=False)
    up.append(data)
    with pytest.raises(errors.IntegrityError):
        up.finish()
    assert not blobs.has(sha(data))


def test_a_parked_upload_resumes_from_its_durable_offset(blobs: BlobStore) -> None:
    data = os.urandom(3 * CHUNK)
    up = blobs.partial(sha(data), len(data), resume=False)
    sent = 2 * CHUNK + CHUNK // 2
    up.append(data[:CHUNK])
    up.append(data[CHUNK:2 * CHUNK])
    up.append(data[2 * CHUNK:sent])
    assert up.park()
    offset = blobs.partial_offset(sha(data))
    assert 0 < offset <= sent
    if not isinstance(blobs, LocalBlobStore):
        assert offset == 2 * CHUNK, "an S3 resume starts at the end of the last part"
    resumed = blobs.partial(sha(data), len(data), resume=True)
    assert resumed.offset == offset
    resumed.append(data[offset:])
    resumed.finish()
    blobs.commit(resumed)
    reader = blobs.open(sha(data))
    assert reader.read_at(0, len(data)) == data
    reader.close()


def test_resume_false_drops_a_parked_upload(blobs: BlobStore) -> None:
    data = os.urandom(3 * CHUNK)
    up = blobs.partial(sha(data), len(data), resume=False)
    up.append(data[:CHUNK])
    up.append(data[CHUNK:2 * CHUNK])
    up.park()
    assert blobs.partial_offset(sha(data)) > 0
    upload(blobs, data, resume=False)
    assert blobs.check(sha(data)).intact
    blobs.discard_partial(sha(data))
    assert blobs.partial_offset(sha(data)) == 0


def test_discard_partial_forgets_a_parked_upload(blobs: BlobStore) -> None:
    data = os.urandom(3 * CHUNK)
    up = blobs.partial(sha(data), len(data), resume=False)
    up.append(data[:CHUNK])
    up.append(data[CHUNK:2 * CHUNK])
    up.park()
    blobs.discard_partial(sha(data))
    assert blobs.partial_offset(sha(data)) == 0
    assert blobs.partial(sha(data), len(data)).offset == 0


def test_committing_content_already_stored_keeps_one_intact_object(blobs: BlobStore) -> None:
    data = os.urandom(2 * PART + 1)
    upload(blobs, data)
    upload(blobs, data)
    assert blobs.check(sha(data)).intact


def test_quarantine_takes_an_object_out_of_service(blobs: BlobStore) -> None:
    data = os.urandom(5000)
    blobs.put(sha(data), data)
    assert blobs.quarantine(sha(data)) is not None
    assert not blobs.has(sha(data))
    assert blobs.check(sha(data)).size == -1
    assert blobs.quarantine(sha(data)) is None


def test_an_object_reads_as_a_seekable_file_and_as_a_real_one(blobs: BlobStore,
                                                              tmp_path: Path) -> None:
    """What the thumbnailer (a real file it can mmap) and the EXIF reader (a seekable
    stream) are given, from either store."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    blobs.put(sha(data), data)
    with open_blob(blobs, sha(data)) as f:
        f.seek(1_000_000)
        assert f.read(10) == data[1_000_000:1_000_010]
        assert f.seek(0, io.SEEK_END) == len(data)
        f.seek(-7, io.SEEK_END)
        assert f.read() == data[-7:]
    with open_as_file(blobs, sha(data), tmp_path / "spool") as real:
        assert os.fstat(real.fileno()).st_size == len(data)
        assert real.read() == data
    assert not any((tmp_path / "spool").glob("*")), "a spooled copy is gone once closed"
    with pytest.raises(errors.NotFound):
        open_blob(blobs, "b" * 64)
    with pytest.raises(errors.NotFound):
        open_as_file(blobs, "b" * 64, tmp_path / "spool")


def _staged(blobs: BlobStore, tmp_path: Path, data: bytes) -> Path:
    """A file of the server's own where the upload intake stages images: the local store's
    partial/uploads/ (any folder for S3, whose objects are not files)."""
    folder = (blobs.root / "partial" / "uploads" if isinstance(blobs, LocalBlobStore)
              else tmp_path / "spool")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "token.0.entry"
    path.write_bytes(data)
    return path


def test_a_staged_file_is_adopted_by_a_local_store_and_uploaded_to_s3(
        blobs: BlobStore, tmp_path: Path) -> None:
    """The local store takes the file itself as the object (same inode: no second write of
    its bytes), read-only, and the staged name is gone; S3 declines and leaves the file for
    the caller to upload."""
    data = os.urandom(300_000)
    staged = _staged(blobs, tmp_path, data)
    inode = staged.stat().st_ino
    adopted = blobs.adopt(sha(data), staged, len(data))
    if isinstance(blobs, LocalBlobStore):
        assert adopted and not staged.exists()
        target = Path(blobs.store.object_file(sha(data)))
        assert target.stat().st_ino == inode
        assert target.stat().st_mode & 0o222 == 0
        assert blobs.check(sha(data)).intact
    else:
        assert not adopted and staged.read_bytes() == data
        assert not blobs.has(sha(data))


def test_adopting_content_already_stored_keeps_the_intact_object(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "storage")
    blobs = LocalBlobStore(store)
    data = os.urandom(50_000)
    blobs.put(sha(data), data)
    before = os.stat(store.object_file(sha(data))).st_ino
    staged = _staged(blobs, tmp_path, data)
    assert blobs.adopt(sha(data), staged, len(data))
    assert not staged.exists()
    assert os.stat(store.object_file(sha(data))).st_ino == before


def test_an_adopted_file_replaces_a_damaged_object_which_is_quarantined(
        tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "storage")
    blobs = LocalBlobStore(store)
    data = os.urandom(50_000)
    blobs.put(sha(data), data)
    damaged = Path(store.object_file(sha(data)))
    damaged.chmod(0o644)
    damaged.write_bytes(b"rot" + data[3:])
    staged = _staged(blobs, tmp_path, data)
    assert blobs.adopt(sha(data), staged, len(data))
    assert blobs.check(sha(data)).intact
    assert len(list(store.quarantine_dir.iterdir())) == 1


def test_a_staged_file_that_changed_size_or_lies_outside_partial_is_refused(
        tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "storage")
    blobs = LocalBlobStore(store)
    data = os.urandom(10_000)
    staged = _staged(blobs, tmp_path, data)
    with pytest.raises(errors.IntegrityError):
        blobs.adopt(sha(data), staged, len(data) + 1)
    assert staged.exists() and not blobs.has(sha(data))
    elsewhere = tmp_path / "elsewhere.jpg"
    elsewhere.write_bytes(data)
    with pytest.raises(ValueError):
        blobs.adopt(sha(data), elsewhere, len(data))
    assert not blobs.has(sha(data))


def test_stat_many_answers_as_stat_does_for_each(blobs: BlobStore) -> None:
    held = [os.urandom(1000 + n) for n in range(5)]
    for data in held:
        blobs.put(sha(data), data)
    absent = [sha(os.urandom(10)) for _ in range(3)]
    asked = [sha(held[0]), absent[0], *[sha(d) for d in held[1:]], *absent[1:]]
    assert blobs.stat_many(asked) == {s: blobs.stat(s) for s in asked}
    assert blobs.stat_many([]) == {}
