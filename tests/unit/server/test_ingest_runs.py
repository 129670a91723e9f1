"""IngestSession.on_chunks on a real store and catalog: a run of whole small files commits
together, a bad chunk fails only its own file, oversized runs are refused before anything is
written, and a commit that fails in the background ends the stream instead of hanging it."""

from __future__ import annotations

import asyncio
import errno
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from photonic import errors
from photonic.grpc_options import MAX_CHUNK_BYTES, MAX_CHUNKS_PER_RUN
from photonic.media.possession import proof_digest
from photonic.models import (
    ChunkData,
    CommittedFile,
    ConflictPolicy,
    ContentHash,
    Decision,
    FileDecision,
    ManifestEntry,
    PossessionProof,
)
from photonic.server.fs_sync import FilesystemSync
from photonic.server.ingest_deps import IngestDeps
from tests.chaos.diskfull import failing_disk
from tests.support.ingest import IngestStream, open_stream, real_ingest_deps


@pytest.fixture(params=["per-file", "filesystem", "postgresql-catalog"])
def deps(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[IngestDeps]:
    """Both ways the server makes a group durable: fsync per file and folder, or one syncfs
    of the filesystem per group (the default where the store is on ext4, XFS or btrfs); and
    per file with the catalog on PostgreSQL (a fresh database of the session's cluster)."""
    filesystem = FilesystemSync(tmp_path) if request.param == "filesystem" else None
    catalog = None
    if request.param == "postgresql-catalog":
        from photonic.server.storage.pg_catalog import PgCatalog
        catalog = PgCatalog(request.getfixturevalue("pg_url"))
    deps = real_ingest_deps(tmp_path, filesystem, catalog)
    yield deps
    deps.catalog.close()
    if filesystem is not None:
        filesystem.close()


def _sha(content: bytes) -> ContentHash:
    return ContentHash(hashlib.sha256(content).hexdigest())


def _whole(content: bytes) -> ChunkData:
    return ChunkData(_sha(content), 0, content, False, len(content))


def _piece(content: bytes, start: int, end: int) -> ChunkData:
    return ChunkData(_sha(content), start, content[start:end], False, end - start)


_Stream = IngestStream


async def _open(deps: IngestDeps, contents: list[bytes]) -> IngestStream:
    """A session that has offered every content as photos/<i>.jpg and been told SEND."""
    return await open_stream(deps, contents)


def _partials(deps: IngestDeps) -> list[Path]:
    return list(deps.store.partial.iterdir())


PHOTOS = [b"first photo " * 40, b"second photo " * 30, b"third photo " * 50]


def test_a_run_of_three_whole_files_commits_all_three(deps: IngestDeps) -> None:
    """Three whole small files in one message are each stored byte for byte and each
    acknowledged once, after the commit, not before."""
    async def body() -> None:
        stream = await _open(deps, PHOTOS)
        await stream.session.on_chunks([_whole(c) for c in PHOTOS])
        await stream.session.flush()
        assert stream.committed() == {_sha(c) for c in PHOTOS}
        assert sum(isinstance(s, CommittedFile) for s in stream.sent) == 3
        assert not stream.failed() and not stream.broken
        await stream.session.close()

    asyncio.run(body())
    for content in PHOTOS:
        assert deps.store.object_path(_sha(content)).read_bytes() == content
    assert not _partials(deps)


def test_a_chunk_at_a_wrong_offset_fails_only_its_file(deps: IngestDeps) -> None:
    """The middle file's chunk starts at 7 instead of 0: that file alone fails (retryable,
    so the agent sends it again) and the two around it are still stored."""
    bad = PHOTOS[1]

    async def body() -> None:
        stream = await _open(deps, PHOTOS)
        await stream.session.on_chunks(
            [_whole(PHOTOS[0]), _piece(bad, 7, len(bad)), _whole(PHOTOS[2])])
        await stream.session.flush()
        assert stream.committed() == {_sha(PHOTOS[0]), _sha(PHOTOS[2])}
        (failed,) = stream.failed()
        assert failed.sha256 == _sha(bad) and failed.retryable
        assert "offset 7" in failed.reason
        assert not stream.broken
        await stream.session.close()

    asyncio.run(body())
    assert deps.store.has_object(_sha(PHOTOS[0])) and deps.store.has_object(_sha(PHOTOS[2]))
    assert not deps.store.has_object(_sha(bad))
    assert deps.store.partial_offset(_sha(bad)) == 0


def test_a_file_split_in_two_chunks_of_one_run_is_committed(deps: IngestDeps) -> None:
    """Several chunks of one file in one message are taken in order."""
    content = bytes(range(256)) * 8

    async def body() -> None:
        stream = await _open(deps, [content, PHOTOS[0]])
        await stream.session.on_chunks([_piece(content, 0, 1000), _whole(PHOTOS[0]),
                                        _piece(content, 1000, len(content))])
        await stream.session.flush()
        assert stream.committed() == {_sha(content), _sha(PHOTOS[0])}
        assert not stream.failed()
        await stream.session.close()

    asyncio.run(body())
    assert deps.store.object_path(_sha(content)).read_bytes() == content


def test_a_bad_second_chunk_discards_the_first_of_the_same_run(deps: IngestDeps) -> None:
    """A file whose second chunk in the run overlaps its first fails, and neither of its
    chunks is written; the other file of the run is still stored."""
    content = bytes(range(256)) * 8

    async def body() -> None:
        stream = await _open(deps, [content, PHOTOS[0]])
        await stream.session.on_chunks([_piece(content, 0, 1000), _whole(PHOTOS[0]),
                                        _piece(content, 500, len(content))])
        await stream.session.flush()
        assert stream.committed() == {_sha(PHOTOS[0])}
        assert [f.sha256 for f in stream.failed()] == [_sha(content)]
        await stream.session.close()

    asyncio.run(body())
    assert not deps.store.has_object(_sha(content))
    assert deps.store.partial_offset(_sha(content)) == 0


def test_chunks_after_a_failed_one_of_the_same_file_are_skipped(deps: IngestDeps) -> None:
    """A file whose first chunk in the run is refused fails alone: its later chunks in the same
    message are skipped (not "not requested" for the whole stream), and the other file of the
    run is still stored."""
    content = bytes(range(256)) * 8

    async def body() -> None:
        stream = await _open(deps, [content, PHOTOS[0]])
        await stream.session.on_chunks([_piece(content, 5, 1000), _piece(content, 1000,
                                                                         len(content)),
                                        _whole(PHOTOS[0])])
        await stream.session.flush()
        assert stream.committed() == {_sha(PHOTOS[0])}
        assert [f.sha256 for f in stream.failed()] == [_sha(content)]
        await stream.session.close()

    asyncio.run(body())
    assert not deps.store.has_object(_sha(content))


def test_content_not_matching_its_hash_fails_alone_without_breaking_the_stream(
        deps: IngestDeps) -> None:
    """A file whose bytes do not hash to its declared SHA-256 is refused at commit; that is
    the file's failure (FailedFile), not the stream's (on_broken stays silent)."""
    liar = b"L" * len(PHOTOS[1])

    async def body() -> None:
        stream = await _open(deps, PHOTOS)
        lie = ChunkData(_sha(PHOTOS[1]), 0, liar, False, len(liar))
        await stream.session.on_chunks([_whole(PHOTOS[0]), lie, _whole(PHOTOS[2])])
        await stream.session.flush()
        assert stream.committed() == {_sha(PHOTOS[0]), _sha(PHOTOS[2])}
        assert [f.sha256 for f in stream.failed()] == [_sha(PHOTOS[1])]
        assert stream.failed()[0].retryable
        assert not stream.broken
        await stream.session.close()

    asyncio.run(body())
    assert not deps.store.has_object(_sha(PHOTOS[1]))


def test_a_run_of_exactly_the_most_chunks_is_accepted(deps: IngestDeps) -> None:
    """MAX_CHUNKS_PER_RUN chunks are allowed: the limit is inclusive."""
    content = bytes(range(MAX_CHUNKS_PER_RUN))

    async def body() -> None:
        stream = await _open(deps, [content])
        await stream.session.on_chunks([_piece(content, i, i + 1) for i in range(len(content))])
        await stream.session.flush()
        assert stream.committed() == {_sha(content)}
        await stream.session.close()

    asyncio.run(body())
    assert deps.store.object_path(_sha(content)).read_bytes() == content


def test_a_run_of_too_many_chunks_is_refused_before_anything_is_written(
        deps: IngestDeps) -> None:
    """One chunk over MAX_CHUNKS_PER_RUN refuses the whole message (the stream ends with
    INVALID_ARGUMENT); no byte of it reaches the disk."""
    content = bytes(range(256)) + b"!"
    assert len(content) == MAX_CHUNKS_PER_RUN + 1

    async def body() -> None:
        stream = await _open(deps, [content])
        with pytest.raises(errors.InvalidInput, match=f"at most {MAX_CHUNKS_PER_RUN} chunks"):
            await stream.session.on_chunks(
                [_piece(content, i, i + 1) for i in range(len(content))])
        await stream.session.flush()
        assert not stream.committed() and not stream.failed()
        await stream.session.close()

    asyncio.run(body())
    assert not deps.store.has_object(_sha(content))
    assert not _partials(deps)


def test_a_run_over_one_chunk_of_bytes_is_refused_before_anything_is_written(
        deps: IngestDeps) -> None:
    """Two files of half a chunk plus one byte each: their raw sizes add up past
    MAX_CHUNK_BYTES, so the message is refused and neither is stored."""
    half = MAX_CHUNK_BYTES // 2 + 1
    contents = [b"a" * half, b"b" * half]

    async def body() -> None:
        stream = await _open(deps, contents)
        with pytest.raises(errors.InvalidInput, match=f"at most {MAX_CHUNK_BYTES} bytes"):
            await stream.session.on_chunks([_whole(c) for c in contents])
        await stream.session.flush()
        assert not stream.committed()
        await stream.session.close()

    asyncio.run(body())
    assert not any(deps.store.has_object(_sha(c)) for c in contents)
    assert not _partials(deps)


def test_a_run_of_exactly_one_chunk_of_bytes_is_accepted(deps: IngestDeps) -> None:
    """Raw sizes adding up to exactly MAX_CHUNK_BYTES are allowed: the limit is inclusive."""
    contents = [b"a" * (MAX_CHUNK_BYTES // 2), b"b" * (MAX_CHUNK_BYTES // 2)]

    async def body() -> None:
        stream = await _open(deps, contents)
        await stream.session.on_chunks([_whole(c) for c in contents])
        await stream.session.flush()
        assert stream.committed() == {_sha(c) for c in contents}
        await stream.session.close()

    asyncio.run(body())
    assert all(deps.store.has_object(_sha(c)) for c in contents)


@pytest.mark.parametrize(("failure", "expected"), [
    (OSError(errno.ENOSPC, "No space left on device"), errors.StorageFull),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), errors.StorageFull),
    (OSError(errno.EIO, "Input/output error"), errors.Transient),
    (RuntimeError("the store is haunted"), errors.Transient),
], ids=["ENOSPC", "EDQUOT", "EIO", "RuntimeError"])
def test_a_failed_background_commit_breaks_the_stream_at_once(
        deps: IngestDeps, monkeypatch: pytest.MonkeyPatch, failure: Exception,
        expected: type[errors.PhotonicError]) -> None:
    """When the store cannot commit a run, on_broken hears it without anyone calling flush
    (the agent would otherwise wait forever for acknowledgements), with StorageFull for a
    full disk or quota and Transient otherwise; nothing is acknowledged or stored."""
    def store_finished(*_: object, **__: object) -> list[str]:
        raise failure

    monkeypatch.setattr(deps.store, "store_finished", store_finished)

    async def body() -> None:
        stream = await _open(deps, PHOTOS)
        await stream.session.on_chunks([_whole(c) for c in PHOTOS])
        await asyncio.wait_for(stream.broken_event.wait(), 10)
        (reported,) = stream.broken
        assert type(reported) is expected
        with pytest.raises(expected):
            await stream.session.flush()
        assert not stream.committed()
        assert not stream.failed()
        await stream.session.close()

    asyncio.run(body())
    assert not any(deps.store.has_object(_sha(c)) for c in PHOTOS)


def test_content_another_stream_is_committing_is_not_answered_have_until_it_is_done(
        deps: IngestDeps) -> None:
    """The object may already be in objects/ while its stream still waits for the group sync:
    a second stream offering the same content is answered once the first is done, not HAVE
    at once (its HAVE would be acknowledged before the object is durable), and then only
    after proving it holds the bytes."""
    content = PHOTOS[0]

    async def body() -> None:
        first = await _open(deps, [content])  # holds the upload claim
        upload = deps.store.open_partial(_sha(content), len(content))
        upload.append(content)
        deps.store.commit(upload, sync=False)  # renamed in, not yet recorded
        second = _Stream(deps)
        await second.session.on_manifest(
            [ManifestEntry(_sha(content), len(content), "photos", "copy.jpg")],
            ConflictPolicy.AUTO)
        await asyncio.sleep(0.05)
        assert second.sent == []
        await first.session.close()  # releases the claim
        for _ in range(200):
            if second.sent:
                break
            await asyncio.sleep(0.01)
        (answer,) = second.sent
        # No path of this agent names the content yet: it proves it holds the bytes first.
        assert isinstance(answer, FileDecision) and answer.action is Decision.PROVE
        await second.session.on_proof(PossessionProof(
            answer.sha256, answer.nonce,
            proof_digest(answer.nonce, answer.ranges, lambda o, n: content[o:o + n])))
        assert [d.action for d in second.decisions()] == [Decision.PROVE, Decision.HAVE]
        await second.session.close()

    asyncio.run(body())


def test_photos_whose_bytes_did_not_reach_a_failing_disk_are_never_acknowledged(
        tmp_path: Path) -> None:
    """A real failing disk (a loop device whose backing store is full): the photos' bytes
    sit in the page cache, the group's syncfs reports the write error, and the stream ends
    with nothing acknowledged, nothing in objects/ and no partial left to resume from (the
    cache may show bytes the disk lost). Once the disk works again the same photos are
    stored, and after a remount, which drops the cache, the disk holds them byte for byte."""
    small = [b"tiny photo %d " % i * 100 for i in range(3)]  # < 4 KiB: written back, not direct
    with failing_disk(tmp_path / "storage") as disk:
        filesystem = FilesystemSync(disk.mount)
        deps = real_ingest_deps(disk.mount, filesystem)
        try:
            async def attempt(broken: bool) -> _Stream:
                stream = await _open(deps, small)
                if broken:
                    disk.break_writes()
                await stream.session.on_chunks([_whole(c) for c in small])
                if broken:
                    await asyncio.wait_for(stream.broken_event.wait(), 30)
                else:
                    await stream.session.flush()
                await stream.session.close()
                return stream

            failed = asyncio.run(attempt(broken=True))
            (reported,) = failed.broken
            # EIO on a real disk; the loop device passes its backing store's ENOSPC up.
            assert isinstance(reported, errors.Transient | errors.StorageFull)
            assert not failed.committed()
            assert not any(deps.store.has_object(_sha(c)) for c in small)
            assert not _partials(deps)
            disk.heal()
            stored = asyncio.run(attempt(broken=False))
            assert stored.committed() == {_sha(c) for c in small}
        finally:
            deps.catalog.close()
            filesystem.close()
        disk.remount()
        for content in small:
            assert deps.store.object_path(_sha(content)).read_bytes() == content
