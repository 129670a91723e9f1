"""Chaos-suite fixtures: every test is counted as a scenario of the summary (summary.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.tally import TALLY


@pytest.fixture(autouse=True)
def _count_scenario() -> Iterator[None]:
    """Every chaos test is one scenario in the summary."""
    TALLY.scenarios += 1
    yield
