"""Chaos-suite fixtures and the end-of-session summary of faults injected and photos verified."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.tally import TALLY


@pytest.fixture(autouse=True)
def _count_scenario() -> Iterator[None]:
    """Every chaos test is one scenario in the summary."""
    TALLY.scenarios += 1
    yield


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.scenarios == 0:
        return
    terminalreporter.section("photonic chaos summary")
    for line in TALLY.lines():
        terminalreporter.write_line(line)
    lost = (TALLY.photos_lost + TALLY.photos_corrupted + TALLY.photos_duplicated
            + TALLY.objects_mismatched + TALLY.job_results_lost
            + TALLY.job_results_duplicated)
    verdict = "NOTHING LOST" if lost == 0 else f"{lost} PHOTOS LOST, CORRUPTED OR DUPLICATED"
    terminalreporter.write_line(f"{'verdict':>18}: {verdict}")
