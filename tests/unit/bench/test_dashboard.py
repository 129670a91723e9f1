"""The dashboard benchmark: its catalog layout, its arithmetic, and a tiny run of the whole
code path against a real server and agent (a few hundred photos instead of 100,000)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.dashboard import (
    NOT_BUILT,
    DashboardFigure,
    DashboardShape,
    _rel_path,
    dashboard_shape,
    dashboard_values,
    figure_specs,
    measure,
    routes,
)

TINY = DashboardShape(catalog_photos=300, folder_photos=50, requests=3, events=2,
                      photo_side_px=480)


def test_the_catalog_layout_puts_folder_photos_in_each_shoot() -> None:
    """Photos 0..49 share one shoot folder, 50 starts the next; 20 shoots make a year; the
    measured folder route names the first shoot."""
    first, last, next_shoot = _rel_path(0, TINY), _rel_path(49, TINY), _rel_path(50, TINY)
    assert first.rsplit("/", 1)[0] == last.rsplit("/", 1)[0] != next_shoot.rsplit("/", 1)[0]
    assert _rel_path(20 * 50, TINY).split("/")[0] == "2001"
    assert routes(TINY)["library_folder"].endswith("/photos/2000/shoot-00")
    assert dashboard_shape(quick=True).catalog_photos == 100_000


def test_values_are_percentiles_of_what_was_measured() -> None:
    """p50/p95 of each route and latency, throughputs as they are; what was not measured
    (thumbnails without their route) leaves its keys out; every key has a row."""
    figure = DashboardFigure(route_ms={"overview": [1.0, 2.0, 3.0, 4.0, 5.0]},
                             commit_to_ws_ms=[10.0, 20.0], file_to_ws_ms=[300.0])
    values = dashboard_values(figure)
    assert values["dashboard.overview.p50"] == [3.0]
    assert values["dashboard.overview.p95"] == [pytest.approx(4.8)]
    assert values["dashboard.commit_to_ws.p50"] == [15.0]
    assert "dashboard.thumbs.cached" not in values
    assert set(values) <= {spec.key for spec in figure_specs(TINY)}


def test_a_tiny_run_measures_every_figure(tmp_path: Path) -> None:
    """The whole bench against a real server and agent, tiny: every route answered, events
    reached the WebSocket, thumbnails were served (or the run says their route is missing)."""
    figure = measure(tmp_path, shape=TINY)
    values = dashboard_values(figure)
    assert {f"dashboard.{key}.p95" for key in routes(TINY)} <= set(values)
    assert len(figure.commit_to_ws_ms) == len(figure.file_to_ws_ms) == TINY.events
    assert len(figure.api_to_ws_ms) == TINY.events
    if NOT_BUILT not in figure.notes:
        assert values["dashboard.thumbs.uncached"][0] > 0
        assert values["dashboard.thumbs.cached"][0] > 0
    assert any("commit_version" in note for note in figure.notes)
    assert not (tmp_path / "dashboard").exists()
