"""How long one attempt of a job may run: scaled by its input (bytes, megapixels) and by the
durations recorded for its kind, clamped between a floor and a ceiling. A timeout that fits
a 2 MB JPEG would kill a 120 MB TIFF; one that fits the TIFF would leave a hung JPEG job
blocking a worker for an hour."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_SAMPLES = 5
"""Recorded durations needed before they count: a single slow first run says little."""


@dataclass(frozen=True)
class TimeoutPolicy:
    floor_s: float
    ceiling_s: float
    p95_factor: float
    per_megabyte_s: float
    per_megapixel_s: float

    def timeout_ms(self, input_bytes: int, input_pixels: int,
                   recent_durations_ms: Sequence[int]) -> int:
        by_input = (input_bytes / 1e6 * self.per_megabyte_s
                    + input_pixels / 1e6 * self.per_megapixel_s)
        by_history = 0.0
        if len(recent_durations_ms) >= MIN_SAMPLES:
            by_history = p95(recent_durations_ms) / 1000 * self.p95_factor
        seconds = max(self.floor_s, by_input, by_history)
        return int(min(self.ceiling_s, seconds) * 1000)


def p95(values: Sequence[int]) -> float:
    """The nearest-rank 95th percentile."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)])
