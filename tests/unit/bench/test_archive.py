"""The archive benchmark: its arithmetic, and a tiny real run of the whole path (an agent's
first sync to a primary, replication to a plain and an encrypted archive node, a scrub)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import datagen
from bench.archive import (
    ArchiveFigure,
    ScrubRun,
    Transfer,
    archive_values,
    figure_specs,
    measure,
)
from bench.report import build_rows

TINY = datagen.SetSpec("archive-tiny", datagen.FileKind.JPEG, 3, 40_000, 80_000, 600, 400)


def test_values_are_rates_ratios_and_cpu_per_gb_of_each_side() -> None:
    """2 GB in 20 s is 100 MB/s; replication at 90 MB/s is 0.9x of it; CPU per GB divides by
    the payload; a cold scrub not measured leaves its keys out."""
    agent = Transfer(20.0, 2 * 10**9, {"agent": 10.0, "primary": 8.0})
    replication = Transfer(2000 / 90, 2 * 10**9, {"primary": 4.0, "archive": 6.0})
    figure = ArchiveFigure(agent=[agent], replication=[replication],
                           scrub={"warm": [ScrubRun(4.0, 2 * 10**9, 3.0, 5.0)]})
    values = archive_values(figure)
    assert values["archive.agent.mb_per_s"] == [pytest.approx(100.0)]
    assert values["archive.replication.ratio"] == [pytest.approx(0.9)]
    assert values["archive.agent.cpu_s_per_gb.agent"] == [pytest.approx(5.0)]
    assert values["archive.replication.cpu_s_per_gb.archive"] == [pytest.approx(3.0)]
    assert values["archive.scrub.warm.mb_per_s"] == [pytest.approx(500.0)]
    assert values["archive.scrub.warm.cpu_s_per_gb"] == [pytest.approx(1.5)]
    assert not any(k.startswith(("archive.scrub.cold", "archive.encrypted")) for k in values)
    rows = {r.figure: r for r in build_rows(figure_specs(1, 2 * 10**9), {
        ("photonic", k): v for k, v in values.items()})}
    ratio = next(r for name, r in rows.items() if "archive node / agent" in name)
    assert ratio.met is True


def test_a_tiny_run_measures_every_figure(tmp_path: Path) -> None:
    """Real daemons over mutual TLS, three small photos: the agent's sync and both
    replications (each confirmed with lag and backlog 0) are timed, the scrub re-hashed every
    byte, and the run's folder is gone afterwards."""
    dataset = datagen.ensure_set(TINY, cache_dir=tmp_path / "data")
    figure = measure(tmp_path / "work", dataset, runs=1, cold=False)
    values = archive_values(figure)
    keys = {spec.key for spec in figure_specs(dataset.count, dataset.total_bytes)}
    assert keys - values.keys() == {"archive.scrub.cold.mb_per_s",
                                    "archive.scrub.cold.cpu_s_per_gb"}
    assert all(v[0] > 0 for k, v in values.items() if "mb_per_s" in k or "ratio" in k)
    assert figure.scrub["warm"][0].bytes_checked == dataset.total_bytes
    assert figure.notes == ["archive: cold scrub not measured (not asked for)"]
    assert not (tmp_path / "work" / "archive-0").exists()
