"""safezip on real archives built by zipfile (some with headers patched to lie): what it lists,
what it refuses before anything is extracted, and what it refuses while streaming."""

from __future__ import annotations

import io
import os
import stat
import struct
import time
import warnings
import zipfile
from pathlib import Path

import pytest

from photonic.errors import InvalidInput
from photonic.media.safezip import SafeZip, ZipImage, ZipLimits, copy_entry, inspect_zip

LIMITS = ZipLimits(max_entries=100, max_uncompressed_bytes=1 << 30, max_ratio=100.0,
                   max_entry_bytes=512 << 20)
MiB = 1 << 20


def _zip(path: Path, entries: dict[str, bytes],
         method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return path


def _patch(path: Path, name: bytes, local_at: int, central_at: int, fmt: str,
           value: int) -> None:
    """Overwrites one field of the entry called name in its local header and its central
    directory record (the name occurs exactly twice: local header, then central record)."""
    data = bytearray(path.read_bytes())
    first = data.find(name)
    second = data.find(name, first + 1)
    assert first > 0 and second > first and data.find(name, second + 1) < 0
    struct.pack_into(fmt, data, first - 30 + local_at, value)
    struct.pack_into(fmt, data, second - 46 + central_at, value)
    path.write_bytes(bytes(data))


def _extract_all(archive: Path, dest: Path, limits: ZipLimits = LIMITS) -> list[Path]:
    """What the server does with an upload: judge everything, then copy each image."""
    images = inspect_zip(archive, limits)
    written = []
    for image in images:
        target = dest / image.name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            copy_entry(archive, image, out, limits)
        written.append(target)
    return written


def _refused(archive: Path, tmp_path: Path, limits: ZipLimits = LIMITS) -> str:
    """The refusal's message; asserts that nothing at all was written anywhere under tmp_path."""
    dest = tmp_path / "extracted"
    dest.mkdir()
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(InvalidInput) as info:
        _extract_all(archive, dest, limits)
    assert sorted(tmp_path.rglob("*")) == before
    assert list(dest.iterdir()) == []
    return str(info.value)


def test_lists_images_with_safe_names_and_skips_everything_else(tmp_path: Path) -> None:
    """Images (any depth, any case of extension) are listed by their posix path and index;
    directories, __MACOSX, dotfiles, text and nested zips are skipped, not refused."""
    nested = io.BytesIO()
    with zipfile.ZipFile(nested, "w") as inner:
        inner.writestr("inner.jpg", b"x" * 10)
    archive = _zip(tmp_path / "a.zip", {
        "shoot/": b"", "shoot/a.jpg": b"A" * 1000, "shoot/./raw/B.NEF": b"B" * 2000,
        "c.HEIC": b"C" * 30, "__MACOSX/shoot/._a.jpg": b"junk", ".hidden.jpg": b"h",
        "shoot/.thumbs/t.jpg": b"t", "notes.txt": b"hello", "more.zip": nested.getvalue(),
    })
    images = inspect_zip(archive, LIMITS)
    assert images == [ZipImage("shoot/a.jpg", 1000, 1), ZipImage("shoot/raw/B.NEF", 2000, 2),
                      ZipImage("c.HEIC", 30, 3)]
    written = _extract_all(archive, tmp_path / "out")
    assert [p.read_bytes() for p in written] == [b"A" * 1000, b"B" * 2000, b"C" * 30]
    assert not (tmp_path / "out" / "inner.jpg").exists()


def test_stored_and_bzip2_entries_are_read_too(tmp_path: Path) -> None:
    """The method does not matter: a stored and a bzip2 archive copy out byte for byte."""
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_BZIP2):
        archive = _zip(tmp_path / f"{method}.zip", {"p.png": os.urandom(5000)}, method)
        out = io.BytesIO()
        [image] = inspect_zip(archive, LIMITS)
        assert copy_entry(archive, image, out, LIMITS) == 5000
        with zipfile.ZipFile(archive) as zf:
            assert out.getvalue() == zf.read("p.png")


@pytest.mark.parametrize("name", [
    "../evil.jpg", "shoot/../../evil.jpg", "..\\evil.jpg", "shoot\\..\\..\\evil.jpg",
    "/etc/evil.jpg", "\\evil.jpg", "C:/evil.jpg", "c:\\windows\\evil.jpg",
])
def test_a_path_that_escapes_is_refused_naming_it(tmp_path: Path, name: str) -> None:
    """`..`, absolute paths, drive letters and backslash separators: refused before anything
    is written, and the message names the entry."""
    archive = _zip(tmp_path / "bad.zip", {"good.jpg": b"g" * 100, name: b"e" * 100})
    message = _refused(archive, tmp_path)
    assert repr(name) in message, message
    assert not (tmp_path / "evil.jpg").exists()


def test_a_nul_in_a_name_is_refused(tmp_path: Path) -> None:
    """zipfile silently cuts a name at NUL ("a.jpg\\0.txt" would become "a.jpg"); refused."""
    archive = _zip(tmp_path / "nul.zip", {"a.jpgX.txt": b"x" * 10})
    data = archive.read_bytes().replace(b"a.jpgX.txt", b"a.jpg\x00.txt")
    archive.write_bytes(data)
    assert "control character" in _refused(archive, tmp_path)


def test_a_symlink_entry_is_refused(tmp_path: Path) -> None:
    """An entry whose unix mode says symlink (it would point anywhere once extracted)."""
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("real.jpg", b"r" * 10)
        link = zipfile.ZipInfo("link.jpg")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    assert "'link.jpg' is a symbolic link" in _refused(archive, tmp_path)


def test_an_encrypted_entry_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "enc.zip", {"secret.jpg": b"s" * 100})
    _patch(archive, b"secret.jpg", 6, 8, "<H", 0x1)
    assert "'secret.jpg' is encrypted" in _refused(archive, tmp_path)


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "many.zip", {f"{i}.jpg": b"x" for i in range(6)})
    limits = ZipLimits(5, 1 << 30, 100.0, 1 << 20)
    assert "6 entries; at most 5" in _refused(archive, tmp_path, limits)


def test_a_central_directory_too_large_for_the_entry_cap_is_refused(tmp_path: Path) -> None:
    """Two entries with 40,000-character names: within the count, but a directory that large
    is refused before zipfile parses it."""
    archive = _zip(tmp_path / "long.zip", {"a" * 40_000 + ".jpg": b"1", "b" * 40_000: b"2"})
    assert "directory" in _refused(archive, tmp_path, ZipLimits(2, 1 << 30, 100.0, 1 << 20))


def test_total_declared_size_over_the_cap_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "big.zip", {"a.jpg": os.urandom(600), "b.jpg": os.urandom(600)})
    limits = ZipLimits(10, 1000, 100.0, 1 << 20)
    message = _refused(archive, tmp_path, limits)
    assert "more than 1000 bytes" in message and "'b.jpg'" in message


def test_an_entry_over_the_per_file_cap_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "one.zip", {"huge.tif": os.urandom(5000)})
    assert "'huge.tif' declares 5000 bytes" in _refused(
        archive, tmp_path, ZipLimits(10, 1 << 30, 100.0, 4096))


def test_a_real_200_mb_deflate_bomb_is_refused_by_its_ratio(tmp_path: Path) -> None:
    """200 MB of zeros deflates to ~200 KB (ratio ~1000): refused from its header at once,
    without inflating it; the archive is written streaming so the test stays fast."""
    archive = tmp_path / "bomb.zip"
    zeros = bytes(MiB)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("ok.jpg", os.urandom(1000))
        with zf.open("bomb.jpg", "w", force_zip64=True) as w:
            for _ in range(200):
                w.write(zeros)
    assert archive.stat().st_size < 2 * MiB
    started = time.monotonic()
    message = _refused(archive, tmp_path)
    assert "'bomb.jpg' would expand" in message and "zip bomb" in message, message
    assert time.monotonic() - started < 1.0


def test_a_header_that_understates_the_size_is_refused_while_streaming(tmp_path: Path) -> None:
    """10 MB of zeros whose headers claim 1,000 bytes passes the header checks (ratio 0.1),
    but copy_entry never writes more than the declared 1,000 bytes and refuses the entry."""
    archive = _zip(tmp_path / "liar.zip", {"liar.jpg": bytes(10 * MiB)})
    _patch(archive, b"liar.jpg", 22, 24, "<L", 1000)
    [image] = inspect_zip(archive, LIMITS)
    assert image.size == 1000
    out = io.BytesIO()
    with pytest.raises(InvalidInput, match=r"'liar\.jpg'"):
        copy_entry(archive, image, out, LIMITS)
    assert len(out.getvalue()) <= 1000


def test_a_header_that_overstates_the_size_is_refused_at_the_end(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "short.zip", {"short.jpg": os.urandom(50_000)})
    _patch(archive, b"short.jpg", 22, 24, "<L", 60_000)
    [image] = inspect_zip(archive, LIMITS)
    with pytest.raises(InvalidInput, match="holds 50000 bytes but declared 60000"):
        copy_entry(archive, image, io.BytesIO(), LIMITS)


@pytest.mark.parametrize("content", [b"", b"not a zip at all" * 100, b"PK\x03\x04" + b"\0" * 40])
def test_a_non_zip_is_refused(tmp_path: Path, content: bytes) -> None:
    archive = tmp_path / "x.zip"
    archive.write_bytes(content)
    assert "not a ZIP archive" in _refused(archive, tmp_path)


def test_a_truncated_zip_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "t.zip", {"a.jpg": os.urandom(20_000), "b.jpg": os.urandom(10)})
    archive.write_bytes(archive.read_bytes()[:15_000])
    assert "not a ZIP archive" in _refused(archive, tmp_path)


def test_an_archive_without_images_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "none.zip", {"readme.txt": b"hi", "__MACOSX/._a.jpg": b"x",
                                           ".b.jpg": b"y", "dir/": b""})
    assert "no images in the archive" in _refused(archive, tmp_path)


@pytest.mark.parametrize("second", ["a/b.jpg", "a/./b.jpg", "a//b.jpg"])
def test_duplicate_names_are_refused(tmp_path: Path, second: str) -> None:
    """Two entries that would land on the same path (after normalising) are refused."""
    archive = tmp_path / "dup.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _zip(archive, {"a/b.jpg": b"1"})
        with zipfile.ZipFile(archive, "a") as zf:
            zf.writestr(second, b"2")
    assert "'a/b.jpg' appears twice" in _refused(archive, tmp_path)


def test_copy_refuses_an_image_that_is_not_the_archives(tmp_path: Path) -> None:
    """A ZipImage from another archive (or a changed file) is refused, not misread."""
    archive = _zip(tmp_path / "a.zip", {"a.jpg": b"a" * 10, "b.jpg": b"b" * 10})
    with SafeZip(archive, LIMITS) as z:
        first, second = z.images()
        with pytest.raises(InvalidInput, match="not an entry"):
            z.copy(ZipImage(second.name, second.size, first.index), io.BytesIO())
        out = io.BytesIO()
        assert z.copy(second, out) == 10 and out.getvalue() == b"b" * 10
