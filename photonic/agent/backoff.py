"""Exponential backoff with full jitter, so a fleet of agents does not reconnect in lockstep."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0, factor: float = 2.0,
                 rng: random.Random | None = None) -> None:
        self._initial = initial_s
        self._max = max_s
        self._factor = factor
        self._rng = rng or random.Random()
        self._attempt = 0

    def next_delay_s(self) -> float:
        ceiling = min(self._max, self._initial * self._factor ** self._attempt)
        self._attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._attempt = 0
