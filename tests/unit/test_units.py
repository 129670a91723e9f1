"""Tests for photonic.units: parsing and formatting of sizes, rates and durations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from photonic.units import (
    SizeIsNotARate,
    format_duration,
    format_rate,
    format_size,
    parse_duration,
    parse_rate,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (0, 0),
        (1024, 1024),
        ("1024", 1024),
        ("1B", 1),
        ("10b", 10),
        ("1KB", 1000),
        ("500 MB", 500_000_000),
        ("10GB", 10_000_000_000),
        ("1.5TB", 1_500_000_000_000),
        ("2PB", 2 * 10**15),
        ("64KiB", 65536),
        ("1MiB", 1024**2),
        ("1.5 GiB", 1536 * 1024**2),
        ("1TiB", 1024**4),
        ("10gb", 10_000_000_000),
        ("64kib", 65536),
        ("  7 Mb  ", 7_000_000),
        (".5KB", 500),
    ],
)
def test_parse_size_accepts_si_binary_and_plain_bytes(text: str | int, expected: int) -> None:
    """Sizes take decimal SI units, binary IEC units (any case), bare numbers and ints."""
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "10 parsecs", "1.5.5GB", "-1GB", "1 G B", "ten"])
def test_parse_size_rejects_nonsense_naming_the_expectation(text: str) -> None:
    """A string that is not a size raises ValueError that says what a size looks like."""
    with pytest.raises(ValueError, match=r"a size like 1\.5TB"):
        parse_size(text)


@pytest.mark.parametrize("value", [True, False, -5, float("nan"), float("inf")])
def test_parse_size_rejects_bools_negatives_and_non_finite(value: int | float) -> None:
    """Booleans (an int subclass), negatives and non-finite numbers are not sizes."""
    with pytest.raises(ValueError, match="size"):
        parse_size(value)


@given(st.integers(min_value=0, max_value=10**18))
def test_parse_size_of_byte_count_round_trips(n: int) -> None:
    """Any byte count written as "<n>B" or as a bare number parses to itself."""
    assert parse_size(f"{n}B") == n
    assert parse_size(str(n)) == n
    assert parse_size(n) == n


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100MB/s", 100_000_000),
        ("10 MiB/s", 10 * 1024**2),
        ("1Gbit/s", 125_000_000),
        ("8 kbit/s", 1000),
        ("100Mbit/s", 12_500_000),
        ("5MB/s", 5_000_000),
        ("2048", 2048),
        ("unlimited", 0),
        ("Unlimited", 0),
        ("0", 0),
        (0, 0),
        (2048, 2048),
    ],
)
def test_parse_rate_accepts_sizes_per_second_bits_and_unlimited(
    text: str | int, expected: int
) -> None:
    """Rates are a size per second (bytes or bits); 0 and "unlimited" both mean no limit."""
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["fast", "100MB/h", "1Gbps", "-1MB/s", "/s", True])
def test_parse_rate_rejects_nonsense_naming_the_expectation(text: str | bool) -> None:
    """Anything but a size per second, a plain number or "unlimited" raises a helpful error."""
    with pytest.raises(ValueError, match="a rate like 100MB/s"):
        parse_rate(text)


@pytest.mark.parametrize("text", ["100MB", " 10MiB ", "1Gbit", "64kb"])
def test_parse_rate_refuses_a_bare_size_and_suggests_per_second(text: str) -> None:
    """ "100MB" is a size: read as a rate it hid a missing "/s" (issue 19)."""
    with pytest.raises(SizeIsNotARate, match=f"write {text.strip()}/s") as info:
        parse_rate(text)
    assert info.value.suggestion == f"{text.strip()}/s"


@pytest.mark.parametrize(
    ("text", "expected_s"),
    [
        ("45s", 45.0),
        ("30m", 1800.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1h 30m 15s", 5415.0),
        ("1.5h", 5400.0),
        ("2H", 7200.0),
        ("90", 90.0),
        ("2.5", 2.5),
        (10, 10.0),
        (0.25, 0.25),
        (0, 0.0),
    ],
)
def test_parse_duration_accepts_units_combinations_and_seconds(
    text: str | float, expected_s: float
) -> None:
    """Durations take ms/s/m/h/d/w, combined like 1h30m; plain numbers are seconds."""
    assert parse_duration(text) == pytest.approx(expected_s)


@pytest.mark.parametrize("text", ["", "soon", "h", "5x", "30m1", "1h-30m", "-5", "-5s", "nan"])
def test_parse_duration_rejects_nonsense_naming_the_expectation(text: str) -> None:
    """A string that is not a duration raises ValueError saying what a duration looks like."""
    with pytest.raises(ValueError, match="a duration like 45s"):
        parse_duration(text)


def test_parse_duration_rejects_bools_and_negative_numbers() -> None:
    """YAML booleans and negative numbers are refused rather than read as 1, 0 or -5 seconds."""
    for value in (True, -1, float("inf")):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(value)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (1234, "1.2 KB"),
        (340_000_000, "340 MB"),
        (1_200_000_000, "1.2 GB"),
        (999_999, "1.0 MB"),
        (5 * 10**15, "5.0 PB"),
        (-2000, "-2.0 KB"),
    ],
)
def test_format_size_uses_decimal_units_with_sensible_precision(n: int, expected: str) -> None:
    """Sizes print in decimal units, one decimal below 100, never as "1000 KB"."""
    assert format_size(n) == expected


def test_format_rate_appends_per_second() -> None:
    """Rates print as a size per second."""
    assert format_rate(12_500_000.0) == "12.5 MB/s"
    assert format_rate(0) == "0 B/s"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.45, "450ms"),
        (0, "0ms"),
        (45, "45s"),
        (59.6, "1m 00s"),
        (187, "3m 07s"),
        (3720, "1h 02m"),
        (2 * 86400 + 3 * 3600, "2d 03h"),
        (-45, "-45s"),
    ],
)
def test_format_duration_shows_two_units_at_most(seconds: float, expected: str) -> None:
    """Durations print compactly with at most two units, zero-padded like a clock."""
    assert format_duration(seconds) == expected


@given(st.integers(min_value=0, max_value=10**7))
def test_formatted_whole_seconds_parse_back_within_a_unit(seconds: int) -> None:
    """What format_duration prints (minus spaces) parses back, to within the dropped unit."""
    printed = format_duration(seconds)
    parsed = parse_duration(printed.replace(" ", ""))
    assert abs(parsed - seconds) <= 3600
