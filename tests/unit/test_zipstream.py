"""The streamed ZIP writer (media/zipstream) and the names results.zip gives outputs
(server/jobs/results_archive): archives any ZIP reader opens, written a block at a time."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from photonic.jobs_model import Job, JobId, JobOutput, JobState
from photonic.media.zipstream import ZipStream
from photonic.server.jobs.results_archive import UniqueNames, entry_name

BLOCK = 1 << 20


def _write(entries: list[tuple[str, bytes]], block: int = BLOCK) -> tuple[bytes, int]:
    """The archive, and the largest piece take() handed out while writing it."""
    stream, pieces = ZipStream(), []
    for name, data in entries:
        with stream.open(name, len(data), 1_700_000_000_000) as entry:
            for at in range(0, len(data), block):
                entry.write(data[at:at + block])
                pieces.append(stream.take())
        pieces.append(stream.take())
    pieces.append(stream.finish())
    return b"".join(pieces), max(len(p) for p in pieces)


def test_a_streamed_archive_reads_back_entry_for_entry() -> None:
    """Three entries (several blocks, a few bytes, none) come back byte for byte, stored
    (not deflated), with their CRCs checked by zipfile and sizes in the central directory."""
    entries = [("IMG_0001.bgremove.png", os.urandom(3 * BLOCK + 17)),
               ("IMG_0002.facecrop.jpg", b"tiny"), ("empty.bin", b"")]
    data, _ = _write(entries)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert [(i.filename, i.file_size, i.compress_type) for i in archive.infolist()] == [
            (n, len(d), zipfile.ZIP_STORED) for n, d in entries]
        assert all(archive.read(n) == d for n, d in entries)
        assert archive.infolist()[0].date_time[0] >= 2023


def test_no_more_than_about_one_block_is_held_at_a_time() -> None:
    """Writing 8 MiB in 1 MiB blocks never hands out (so never holds) much more than one
    block: the writer keeps nothing between takes."""
    data, largest = _write([("big.bin", os.urandom(8 * BLOCK))])
    assert len(data) > 8 * BLOCK
    assert largest <= BLOCK + 4096


def test_entries_carry_a_data_descriptor_since_the_sink_cannot_seek() -> None:
    """The local headers are written before the sizes are known: flag bit 3 is set and the
    archive still opens (the central directory has the real sizes and CRCs)."""
    data, _ = _write([("a.png", b"x" * 1000)])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.infolist()[0].flag_bits & 0x08


def test_a_date_before_1980_is_clamped_to_the_earliest_zip_date() -> None:
    stream = ZipStream()
    with stream.open("old.jpg", 1, 0) as entry:
        entry.write(b"x")
    with zipfile.ZipFile(io.BytesIO(stream.take() + stream.finish())) as archive:
        assert archive.infolist()[0].date_time == (1980, 1, 1, 0, 0, 0)


def _job(kind: str, input_path: str, sha: str = "ab" * 32) -> Job:
    return Job(JobId("j1"), kind, JobState.COMPLETED, input_sha256=(sha,),
               input_path=input_path)


@pytest.mark.parametrize(("kind", "input_path", "output", "expected"), [
    ("bgremove", "_uploads/shoot-1/IMG_0001.jpg", "IMG_0001.png", "IMG_0001.bgremove.png"),
    ("facecrop", "laptop/photos/a/b.JPG", "b.jpg", "b.facecrop.jpg"),
    ("facecrop", "laptop/photos/b.jpg", "b.face2.jpg", "b.facecrop.face2.jpg"),
    ("bgremove", "x/y/photo.jpg", "cutout.png", "photo.bgremove.cutout.png"),
    ("bgremove", "", "out.png", "abababababababab.bgremove.out.png"),
    ("bgremove", "x/y/.hidden.jpg", ".hidden.png", "hidden.bgremove.png"),
    ("bgremove", "x/y/new\nline.jpg", "new\nline.png", "new_line.bgremove.png"),
])
def test_an_output_is_named_after_its_input_and_kind(kind: str, input_path: str, output: str,
                                                     expected: str) -> None:
    """`<input stem>.<kind>.<what the output adds>`, one plain name with no folder, no dot
    in front and no control character."""
    names = UniqueNames()
    assert names.take(entry_name(_job(kind, input_path), JobOutput("cd" * 32, output, 1))) \
        == expected


def test_a_name_taken_twice_gets_a_number_before_the_kind() -> None:
    """Two inputs called IMG.jpg in different folders (and a case-only difference) give
    three distinct names in the archive."""
    names = UniqueNames()
    got = [names.take(entry_name(_job("bgremove", p), JobOutput("cd" * 32, o, 1)))
           for p, o in (("a/IMG.jpg", "IMG.png"), ("b/IMG.jpg", "IMG.png"),
                        ("c/img.jpg", "img.png"))]
    assert got == ["IMG.bgremove.png", "IMG-2.bgremove.png", "img-3.bgremove.png"]
