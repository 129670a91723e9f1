"""Writes a ZIP archive as a stream of byte blocks, for a download that starts before the
archive is complete: zipfile writes into a sink that cannot seek (so each entry's sizes and
CRC follow its data in a descriptor, and the central directory holds them all at the end),
and the caller takes what was written after each block, so no more than about one block of
the archive is ever in memory. Entries are stored, not deflated: photos do not shrink."""

from __future__ import annotations

import time
import zipfile
from typing import IO

ZIP64_FROM_BYTES = 1 << 31
"""Entries at least this large get zip64 sizes (zipfile's own margin below 4 GiB)."""
_EARLIEST = (1980, 1, 1, 0, 0, 0)


class _Sink:
    """A file that cannot seek and keeps only what was written since the last take."""

    def __init__(self) -> None:
        self._blocks: list[bytes] = []
        self._position = 0

    def write(self, data: bytes) -> int:
        block = bytes(data)
        self._blocks.append(block)
        self._position += len(block)
        return len(block)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        taken = b"".join(self._blocks)
        self._blocks.clear()
        return taken


class ZipStream:
    """open() one entry at a time and write its bytes, take() what is ready to send after
    each write, finish() once for the end of the archive."""

    def __init__(self) -> None:
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(self._sink, "w", zipfile.ZIP_STORED)

    def open(self, name: str, size: int, modified_unix_ms: int = 0) -> IO[bytes]:
        """A writer for the entry `name` (a plain relative name the caller made safe) that
        will hold `size` bytes, dated modified_unix_ms (local time, as ZIP tools read it)."""
        info = zipfile.ZipInfo(name, _date_time(modified_unix_ms))
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o100644 << 16
        info.file_size = size
        entry: IO[bytes] = self._zip.open(info, "w", force_zip64=size >= ZIP64_FROM_BYTES)
        return entry

    def take(self) -> bytes:
        """The bytes written since the last take (may be empty)."""
        return self._sink.take()

    def finish(self) -> bytes:
        """The rest of the archive: the central directory and its end records."""
        self._zip.close()
        return self._sink.take()


def _date_time(unix_ms: int) -> tuple[int, int, int, int, int, int]:
    if unix_ms <= 0:
        return _EARLIEST
    t = time.localtime(unix_ms / 1000)
    stamp = (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)
    return max(stamp, _EARLIEST)
