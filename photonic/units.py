"""Parses and formats the human units of config and status output: sizes, rates, durations."""

from __future__ import annotations

import math
import re
from decimal import Decimal

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "pib": 1024**5,
}

# Network speeds are quoted in bits; a byte is eight of them.
_BIT_UNITS: dict[str, Decimal] = {
    "bit": Decimal(1) / 8,
    "kbit": Decimal(1000) / 8,
    "mbit": Decimal(1000**2) / 8,
    "gbit": Decimal(1000**3) / 8,
    "tbit": Decimal(1000**4) / 8,
}

_DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}

_NUMBER_UNIT_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")
_DURATION_PART_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)", re.IGNORECASE)

SIZE_EXPECTED = "a size like 1.5TB, 500MB, 64KiB or a number of bytes"
RATE_EXPECTED = "a rate like 100MB/s, 10MiB/s, 1Gbit/s, or 0 / unlimited"
DURATION_EXPECTED = "a duration like 45s, 30m, 2h, 1h30m, 500ms, 1d, or a number of seconds"


def _plain_number(value: int | float, expected: str) -> float:
    """Numbers from YAML arrive as int/float; bool is an int subclass and never a quantity."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected {expected}, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"expected {expected}, got {value!r} (must be a finite number >= 0)")
    return float(value)


def parse_size(text: str | int | float) -> int:
    """Bytes in `text`: "1.5TB" (decimal SI), "64KiB" (binary), "1024" or an int."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    if not isinstance(text, str):
        return round(_plain_number(text, SIZE_EXPECTED))
    match = _NUMBER_UNIT_RE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(f"expected {SIZE_EXPECTED}, got {text!r}")
    # Decimal, not float: byte counts beyond 2**53 must not lose their last digits.
    return round(Decimal(match.group(1)) * _SIZE_UNITS[unit])


class SizeIsNotARate(ValueError):
    """A rate was given as a bare size ("100MB"): it reads as a size, so it is refused."""

    def __init__(self, text: str) -> None:
        self.suggestion = f"{text.strip()}/s"
        super().__init__(f"{text.strip()!r} is a size, not a rate: write {self.suggestion}")


def parse_rate(text: str | int | float) -> int:
    """Bytes per second in `text`: "100MB/s", "1Gbit/s"; 0 or "unlimited" mean no limit (0)."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    if not isinstance(text, str):
        return round(_plain_number(text, RATE_EXPECTED))
    cleaned = text.strip().lower()
    if cleaned in {"unlimited", "none", "0"}:
        return 0
    # Only "/s": "Mbps" vs "MBps" differ by case alone, and units here are case-insensitive.
    per_second = cleaned.endswith("/s")
    match = _NUMBER_UNIT_RE.match(cleaned.removesuffix("/s"))
    if match is None:
        raise ValueError(f"expected {RATE_EXPECTED}, got {text!r}")
    number, unit = Decimal(match.group(1)), match.group(2)
    if unit and not per_second and (unit in _BIT_UNITS or unit in _SIZE_UNITS):
        # "100MB" is a size; reading it as a rate silently hid typos in config (issue 19).
        raise SizeIsNotARate(text)
    if unit in _BIT_UNITS:
        return round(number * _BIT_UNITS[unit])
    if unit in _SIZE_UNITS:
        return round(number * _SIZE_UNITS[unit])
    raise ValueError(f"expected {RATE_EXPECTED}, got {text!r}")


def parse_duration(text: str | int | float) -> float:
    """Seconds in `text`: "2h", "30m", "45s", "500ms", "1d", "1h30m"; plain numbers are seconds."""
    if not isinstance(text, str):
        return _plain_number(text, DURATION_EXPECTED)
    stripped = text.strip()
    try:
        return _plain_number(float(stripped), DURATION_EXPECTED)
    except ValueError:
        pass
    total_s, position = 0.0, 0
    for match in _DURATION_PART_RE.finditer(stripped):
        if match.start() != position:
            break
        total_s += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
        position = match.end()
    if position == 0 or position != len(stripped):
        raise ValueError(f"expected {DURATION_EXPECTED}, got {text!r}")
    return total_s


def format_size(n: int | float) -> str:
    """A byte count for people: "512 B", "1.2 GB", "340 MB" (decimal units, like disks)."""
    sign = "-" if n < 0 else ""
    value = float(abs(n))
    if value < 1000:
        return f"{sign}{int(value)} B"
    for unit in ("KB", "MB", "GB", "TB", "PB"):
        value /= 1000
        text = f"{value:.1f}" if value < 99.95 else f"{value:.0f}"
        if float(text) < 1000 or unit == "PB":
            return f"{sign}{text} {unit}"
    raise AssertionError("unreachable: PB always returns")


def format_rate(bytes_per_s: float) -> str:
    """A transfer rate for people: "12.5 MB/s"; 0 reads as idle, not as "unlimited"."""
    return f"{format_size(bytes_per_s)}/s"


def format_duration(seconds: float) -> str:
    """A duration for people, two units at most: "450ms", "45s", "3m 07s", "1h 02m", "2d 03h"."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 0.9995:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
