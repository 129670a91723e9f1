"""HTTP Range (one byte range; RFC 9110 14) and entity-tag conditions (If-Match,
If-None-Match, If-Range) for the export's GET and HEAD."""

from __future__ import annotations

from dataclasses import dataclass


class RangeNotSatisfiable(Exception):
    """The Range header is well-formed but asks for nothing the file has: 416."""


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int
    """Exclusive."""

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


def byte_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to send, or None for the whole file. A header that is malformed, not
    in bytes or asks for several ranges is ignored (the whole file is sent, as RFC 9110
    allows); one that is well-formed but lies past the end raises RangeNotSatisfiable."""
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or (first and not first.isdigit()) or not (first or last.isdigit()):
        return None
    if not first.isdigit():  # a suffix: the last N bytes
        if not last.isdigit() or int(last) == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, size - int(last)), size)
    start = int(first)
    if last and not last.isdigit():
        return None
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    end = min(int(last) + 1, size) if last else size
    return ByteRange(start, end)


def _tags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


def none_match(header: str | None, etag: str) -> bool:
    """Whether If-None-Match names this entity (weak comparison, or "*")."""
    if header is None:
        return False
    return any(t == "*" or t.removeprefix("W/") == etag for t in _tags(header))


def match_fails(header: str | None, etag: str) -> bool:
    """Whether If-Match is present and names neither this entity (strong) nor "*"."""
    if header is None:
        return False
    return not any(t == "*" or t == etag for t in _tags(header))


def range_applies(if_range: str | None, etag: str) -> bool:
    """Whether a Range is honoured: no If-Range, or one naming this entity (strongly)."""
    return if_range is None or if_range.strip() == etag
