"""The chaos suite's end-of-session summary (tally.py's totals), whole also when the tests run
in several processes (pytest -n): each worker hands its tally to the controlling process when
it finishes, and that process adds them up and prints the one summary. The hooks are imported
by tests/conftest.py, which every run loads (the controller of `pytest -n` never loads
tests/chaos/conftest.py: it collects nothing itself)."""

from __future__ import annotations

from dataclasses import asdict, fields

import pytest

from tests.chaos.tally import TALLY

WORKER_OUTPUT_KEY = "photonic_chaos_tally"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a worker of pytest -n: its tally goes back to the controller with its results."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output[WORKER_OUTPUT_KEY] = asdict(TALLY)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """In the controller of pytest -n (an xdist hook): adds a finished worker's tally."""
    counts = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
    for f in fields(TALLY):
        if counts:
            setattr(TALLY, f.name, getattr(TALLY, f.name) + int(counts.get(f.name, 0)))


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
