"""Reads the images of an uploaded ZIP archive without trusting it: every entry's path, type,
size and compression ratio is judged before any byte is extracted, and sizes are counted again
while an entry streams out, since a header may lie."""

from __future__ import annotations

import contextlib
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, BinaryIO

from photonic.errors import InvalidInput

IMAGE_EXTENSIONS = frozenset({
    "jpg", "jpeg", "jpe", "png", "tif", "tiff", "heic", "heif", "hif", "avif", "webp", "gif",
    "bmp", "jxl", "dng", "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "raf", "orf",
    "rw2", "pef", "srw", "x3f", "3fr", "iiq", "erf", "mef", "mos", "kdc", "dcr", "rwl",
})
"""Extensions (lower case) of the entries that become jobs; every other file is skipped."""

COPY_BLOCK_BYTES = 1 << 20

_READABLE_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                               zipfile.ZIP_LZMA})
_FLAG_ENCRYPTED = 0x1
_FLAG_STRONG_ENCRYPTION = 0x40
_CENTRAL_DIRECTORY_BYTES_PER_ENTRY = 512
"""The directory a legitimate archive of N entries needs at most (46 bytes of header, a name,
a few extra fields); a larger one is refused before zipfile parses it into memory."""


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int
    """Entries of every kind (directories and skipped files count too)."""
    max_uncompressed_bytes: int
    """The sum of every entry's declared size."""
    max_ratio: float
    """The highest declared size / compressed size of one entry (a deflate bomb reaches 1000)."""
    max_entry_bytes: int
    """The largest one entry may be, declared or actually read."""
    min_ratio_check_bytes: int = 64 * 1024
    """Entries smaller than this are not judged by ratio: a few KiB of text compress 100x and
    cannot hurt anyone."""


@dataclass(frozen=True)
class ZipImage:
    name: str
    """The entry's safe relative posix path, e.g. "shoot/a.jpg"."""
    size: int
    """Its declared uncompressed size in bytes."""
    index: int
    """Its position in the archive's central directory."""


def inspect_zip(path: Path, limits: ZipLimits) -> list[ZipImage]:
    """The archive's images, after every entry passed every check; InvalidInput otherwise."""
    with SafeZip(path, limits) as archive:
        return archive.images()


def copy_entry(path: Path, image: ZipImage, dest: BinaryIO, limits: ZipLimits) -> int:
    """Streams one image of inspect_zip into dest and returns its size. On InvalidInput dest
    holds a partial copy that the caller discards. Parses the archive's directory again: for
    many entries, open one SafeZip and call its copy."""
    with SafeZip(path, limits) as archive:
        return archive.copy(image, dest)


class SafeZip:
    """One archive opened and judged once, then copied entry by entry."""

    def __init__(self, path: Path, limits: ZipLimits) -> None:
        self._limits = limits
        _check_directory_size(path, limits)
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError,
                NotImplementedError):
            raise InvalidInput("the upload is not a ZIP archive (or it is truncated)") from None
        try:
            self._images = self._judge()
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def images(self) -> list[ZipImage]:
        return list(self._images)

    def copy(self, image: ZipImage, dest: BinaryIO) -> int:
        """Writes the entry to dest, refusing it the moment it yields more than it declared
        (or than max_entry_bytes), fewer than it declared, or bytes that fail its CRC."""
        infos = self._zip.infolist()
        if not 0 <= image.index < len(infos) or _entry_path(infos[image.index]) != image.name:
            raise InvalidInput(f"{image.name!r} is not an entry of this archive")
        info = infos[image.index]
        cap = min(info.file_size, self._limits.max_entry_bytes)
        written = 0
        with _damaged_as_invalid(image.name):
            source = self._zip.open(info)
        with source:
            while block := _read_block(source, image.name):
                written += len(block)
                if written > cap:
                    raise InvalidInput(f"entry {image.name!r} holds more than the {cap} "
                                       "bytes it declared; refused as a zip bomb")
                dest.write(block)
        if written != info.file_size:
            raise InvalidInput(f"entry {image.name!r} holds {written} bytes but declared "
                               f"{info.file_size}")
        return written

    def _judge(self) -> list[ZipImage]:
        infos = self._zip.infolist()
        if len(infos) > self._limits.max_entries:
            raise InvalidInput(f"the archive has {len(infos)} entries; at most "
                               f"{self._limits.max_entries} are accepted")
        seen: set[str] = set()
        total = 0
        images: list[ZipImage] = []
        for index, info in enumerate(infos):
            name = _entry_path(info)
            _check_entry(name, info, self._limits)
            if info.is_dir():
                continue
            if name in seen:
                raise InvalidInput(f"entry {name!r} appears twice in the archive")
            seen.add(name)
            total += info.file_size
            if total > self._limits.max_uncompressed_bytes:
                raise InvalidInput(f"the archive would unpack to more than "
                                   f"{self._limits.max_uncompressed_bytes} bytes (at entry "
                                   f"{name!r}); refused")
            if is_image_name(name):
                images.append(ZipImage(name, info.file_size, index))
        if not images:
            raise InvalidInput("no images in the archive (looked for "
                               "JPEG, PNG, TIFF, HEIC, WebP and RAW files)")
        return images


@contextlib.contextmanager
def _damaged_as_invalid(name: str) -> Iterator[None]:
    """Reading errors of an entry (bad CRC, broken deflate stream, header mismatch) as the
    caller's problem; errors writing the copy are not caught here."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise InvalidInput(f"entry {name!r} is damaged ({exc})") from None


def _read_block(source: IO[bytes], name: str) -> bytes:
    with _damaged_as_invalid(name):
        return source.read(COPY_BLOCK_BYTES)


def is_image_name(name: str) -> bool:
    """True for an image file that is not macOS metadata or a hidden file."""
    parts = PurePosixPath(name).parts
    if not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
        return False
    suffix = PurePosixPath(name).suffix.lower().lstrip(".")
    return suffix in IMAGE_EXTENSIONS


def _entry_path(info: zipfile.ZipInfo) -> str:
    """The entry's name as a relative posix path, or InvalidInput when it could land outside
    the folder it is extracted into on any system (Windows separators and drives included)."""
    raw = info.orig_filename  # zipfile cuts `filename` at a NUL; the original keeps it
    shown = raw.replace("\x00", "\\0")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in raw):
        raise InvalidInput(f"entry {shown!r} has a control character (NUL, newline...) in "
                           "its name; refused")
    unified = raw.replace("\\", "/")
    if unified.startswith("/") or (len(unified) >= 2 and unified[1] == ":"):
        raise InvalidInput(f"entry {shown!r} has an absolute path; refused")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInput(f"entry {shown!r} points outside the archive's folder (..); "
                           "refused")
    if not parts:
        raise InvalidInput(f"entry {shown!r} has no name; refused")
    return "/".join(parts) + ("/" if unified.endswith("/") else "")


def _check_entry(name: str, info: zipfile.ZipInfo, limits: ZipLimits) -> None:
    """Refuses links and devices, encryption, unreadable methods and declared bombs."""
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if stat.S_ISLNK(mode):
        raise InvalidInput(f"entry {name!r} is a symbolic link; refused")
    if kind and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InvalidInput(f"entry {name!r} is not a regular file; refused")
    if info.flag_bits & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION):
        raise InvalidInput(f"entry {name!r} is encrypted; photonic reads only "
                           "unencrypted archives")
    if info.is_dir():
        return
    if info.compress_type not in _READABLE_METHODS:
        raise InvalidInput(f"entry {name!r} uses a compression method photonic cannot read "
                           f"({info.compress_type})")
    if info.file_size > limits.max_entry_bytes:
        raise InvalidInput(f"entry {name!r} declares {info.file_size} bytes; at most "
                           f"{limits.max_entry_bytes} per file are accepted")
    if info.file_size >= limits.min_ratio_check_bytes:
        ratio = info.file_size / info.compress_size if info.compress_size else float("inf")
        if ratio > limits.max_ratio:
            raise InvalidInput(f"entry {name!r} would expand {ratio:.0f} times (at most "
                               f"{limits.max_ratio:g}); refused as a zip bomb")


def _check_directory_size(path: Path, limits: ZipLimits) -> None:
    """Refuses an archive whose central directory is too large for max_entries before zipfile
    turns it into objects (a directory of millions of tiny entries would fill memory)."""
    entries, directory_bytes = _end_record(path)
    if entries > limits.max_entries:
        raise InvalidInput(f"the archive has {entries} entries; at most "
                           f"{limits.max_entries} are accepted")
    if directory_bytes > limits.max_entries * _CENTRAL_DIRECTORY_BYTES_PER_ENTRY + 65536:
        raise InvalidInput(f"the archive's directory is {directory_bytes} bytes, too large "
                           f"for {limits.max_entries} entries; refused")


_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")


def _end_record(path: Path) -> tuple[int, int]:
    """(entries, central directory bytes) from the archive's end records (zip64 included)."""
    not_zip = InvalidInput("the upload is not a ZIP archive (or it is truncated)")
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            tail_start = max(0, size - (_EOCD.size + 0xFFFF))
            f.seek(tail_start)
            tail = f.read()
            at = tail.rfind(b"PK\x05\x06")
            if at < 0 or len(tail) - at < _EOCD.size:
                raise not_zip
            _, _, _, _, entries, cd_size, _, _ = _EOCD.unpack_from(tail, at)
            if entries != 0xFFFF and cd_size != 0xFFFFFFFF:
                return entries, cd_size
            locator_at = tail_start + at - _ZIP64_LOCATOR.size
            if locator_at < 0:
                raise not_zip
            f.seek(locator_at)
            sig, _, eocd64_at, _ = _ZIP64_LOCATOR.unpack(f.read(_ZIP64_LOCATOR.size))
            f.seek(eocd64_at)
            record = f.read(_ZIP64_EOCD.size)
    except OSError as exc:
        raise InvalidInput(f"the archive cannot be read ({exc.strerror})") from None
    if sig != b"PK\x06\x07" or len(record) < _ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
        raise not_zip
    fields = _ZIP64_EOCD.unpack(record)
    return int(fields[7]), int(fields[8])
