"""The scale-out benchmark group: its pure logic (fairness, the agents' endpoint orders, the
backends' rotation, the seeding plan, the cache key) and tiny real runs of its parts (a
PostgreSQL catalog seeded, cached and copied into a started cluster; moto's S3 server in its
own process)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import scale_catalog, scaleout, scaleout_catalog
from bench.datagen import DataSet
from bench.procstat import ProcUsage
from bench.report import PHOTONIC, build_rows
from bench.scaleout_services import MotoService, aws_environment, object_key


def test_fairness_is_the_slowest_over_the_mean() -> None:
    assert scaleout.fairness([10.0, 10.0, 10.0]) == 1.0
    assert scaleout.fairness([5.0, 10.0, 15.0]) == pytest.approx(0.5)
    assert scaleout.fairness([1.0, 9.0]) == pytest.approx(0.2)
    assert scaleout.fairness([0.0, 0.0]) == 0.0
    with pytest.raises(ValueError):
        scaleout.fairness([])


def test_agents_list_every_server_in_alternating_orders() -> None:
    """Agents take the first reachable endpoint: half start on each server, none is left
    without the other as its fallback."""
    orders = scaleout.endpoint_orders(["a:1", "b:2"], 5)
    assert orders == [["a:1", "b:2"], ["b:2", "a:1"], ["a:1", "b:2"], ["b:2", "a:1"],
                      ["a:1", "b:2"]]
    firsts = [o[0] for o in scaleout.endpoint_orders(["a:1", "b:2"], 20)]
    assert firsts.count("a:1") == firsts.count("b:2") == 10


def test_backends_take_turns_going_first() -> None:
    assert scaleout.run_order(0) == (scaleout.EMBEDDED, scaleout.SCALEOUT)
    assert scaleout.run_order(1) == (scaleout.SCALEOUT, scaleout.EMBEDDED)
    assert scaleout.run_order(2) == scaleout.run_order(0)


@pytest.mark.parametrize("photos,batch", [(0, 10), (1, 10), (10, 10), (25, 10), (100_001, 100_000)])
def test_seeding_plan_covers_every_row_once_in_order(photos: int, batch: int) -> None:
    plan = scaleout_catalog.seeding_plan(photos, batch)
    rows = [i for b in plan for i in range(b.start, b.stop)]
    assert rows == list(range(photos))
    assert all(0 < b.stop - b.start <= batch for b in plan)


def test_seeded_rows_are_the_sqlite_catalogs() -> None:
    """Both catalogs answer the same manifests: same hashes, same sizes."""
    text = scaleout_catalog.copy_text(scaleout_catalog.CopyBatch(3, 6)).decode()
    lines = [line.split("\t") for line in text.splitlines()]
    assert [sha for sha, _ in lines] == [scale_catalog.synthetic_hash(i) for i in range(3, 6)]
    rows = list(scale_catalog._rows(3, 6))
    assert [(sha, int(size)) for sha, size in lines] == rows


def test_cache_key_follows_rows_schema_and_postgresql_version(
        monkeypatch: pytest.MonkeyPatch) -> None:
    key = scaleout_catalog.pg_catalog_key(1000, "15")
    assert key == scaleout_catalog.pg_catalog_key(1000, "15")
    assert key != scaleout_catalog.pg_catalog_key(1001, "15")
    assert key != scaleout_catalog.pg_catalog_key(1000, "16")
    monkeypatch.setattr(scaleout_catalog, "SEED_VERSION", scaleout_catalog.SEED_VERSION + 1)
    assert key != scaleout_catalog.pg_catalog_key(1000, "15")
    monkeypatch.undo()
    monkeypatch.setattr(scaleout_catalog, "migration_version", lambda _package: 999)
    assert key != scaleout_catalog.pg_catalog_key(1000, "15")


def test_cpu_rows_are_per_gb_for_big_photos_and_per_thousand_for_small(tmp_path: Path) -> None:
    big = DataSet("large", tmp_path, (("a.jpg", 5_000_000), ("b.jpg", 7_000_000)))
    small = DataSet("small", tmp_path, (("a.jpg", 150_000),) * 4)
    assert scaleout.cpu_per(big) == ("CPU-s/GB", 0.012)
    assert scaleout.cpu_per(small) == ("CPU-s/1,000 photos", 0.004)


def test_committed_lines_are_counted_by_agent() -> None:
    log = "\n".join([
        'ts=2026-12-07T00:00:00.000Z level=info event=file_committed agent=load-0000 path=a',
        'ts=2026-12-07T00:00:00.000Z level=info event=file_committed agent=load-0000 path=b',
        'ts=2026-12-07T00:00:00.000Z level=info event=file_committed agent=load-0001 path=c',
        'ts=2026-12-07T00:00:00.000Z level=info event=sync_stream_refused reason=x',
        'ts=2026-12-07T00:00:00.000Z level=info event=batch_done note="file_committed"',
    ])
    assert dict(scaleout.committed_by_agent(log)) == {"load-0000": 2, "load-0001": 1}


def test_every_row_has_the_values_a_run_records(tmp_path: Path) -> None:
    """The table's keys are those the figures record: a run's samples fill every row, with
    the scale-out side set against the embedded default."""
    sets = {"large": DataSet("large", tmp_path, (("a", 5_000_000),)),
            "small": DataSet("small", tmp_path, (("a", 150_000),))}
    shape = scaleout.scaleout_shape(quick=True)
    samples: dict[tuple[str, str], list[float]] = {}
    for name, dataset in sets.items():
        for backend in scaleout.BACKENDS:
            run = scaleout.FirstSync(backend, 2.0, _usage(1.0), _usage(2.0), 0.5)
            for key, value in scaleout.first_sync_values(name, dataset, run).items():
                samples.setdefault((backend, key), []).append(value)
    for key in ("scaleout.manifest.new_ms", "scaleout.manifest.stored_ms"):
        samples[(PHOTONIC, key)] = [50.0]
    figure = scaleout.TwoServerFigure(4, 40, 6_000_000, 3.0, [1.0, 2.0, 1.5, 1.5],
                                      [1.0, 1.2], 0.3, 0.4, 2.0, 0, [20, 20])
    for key, values in scaleout.two_server_values(figure).items():
        samples[(PHOTONIC, key)] = values
    rows = build_rows(scaleout.figure_specs(sets, shape, 4), samples)
    assert all(row.photonic is not None for row in rows), [r.figure for r in rows
                                                           if r.photonic is None]
    ratios = [row.ratio for row in rows if row.peer == scaleout.EMBEDDED]
    assert ratios and all(r is not None for r in ratios)
    fair = next(r for r in rows if r.unit == "ratio")
    assert fair.photonic is not None and fair.photonic.median == pytest.approx(1.0 / 1.5)
    assert fair.met is True


def _usage(cpu_s: float) -> ProcUsage:
    return ProcUsage(cpu_s, 0)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every user can enter: as root the cluster runs as the postgres user, and
    pytest's basetemp is root's alone."""
    path = Path(tempfile.mkdtemp(prefix="photonic-bench-pg-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_pg_catalog_is_seeded_once_cached_and_copied_into_a_started_cluster(
        open_dir: Path) -> None:
    """A real cluster: the migrations' schema holding the synthetic rows in hash order (seq
    follows), reused while its key holds, and each run gets a copy of its own."""
    pytest.importorskip("psycopg")
    import psycopg

    tmp_path = open_dir
    cache, work = tmp_path / "cache", tmp_path / "work"
    data = scaleout_catalog.ensure_pg_catalog(2000, cache, work)
    meta = cache / "pg-catalog-2000" / "catalog.json"
    stamp = meta.stat().st_mtime_ns
    assert scaleout_catalog.ensure_pg_catalog(2000, cache, work) == data
    assert meta.stat().st_mtime_ns == stamp  # not seeded again
    service, url = scaleout_catalog.install_pg_catalog(data, tmp_path / "run")
    try:
        with psycopg.connect(url) as conn:
            conn.execute("INSERT INTO agents (agent_id, first_seen_ms, last_seen_ms) "
                         "VALUES ('only-in-the-copy', 0, 0)")
            rows = conn.execute("SELECT sha256, size FROM photos ORDER BY seq").fetchall()
        expected = sorted(scale_catalog._rows(0, 2000))
        assert rows == expected
        assert service.usage().cpu_s >= 0
    finally:
        service.close()
    # The cached folder is untouched by what a run wrote.
    again, url2 = scaleout_catalog.install_pg_catalog(data, tmp_path / "run2")
    try:
        with psycopg.connect(url2) as conn:
            assert conn.execute("SELECT count(*) FROM agents").fetchone() == (0,)
    finally:
        again.close()
    assert json.loads(meta.read_text())["photos"] == 2000


def test_moto_endpoint_runs_in_its_own_process() -> None:
    """The bench's S3 endpoint: a bucket, an object at photonic's content address, listed
    with its size; the endpoint's CPU is its own process's."""
    data = b"photonic-bench"
    sha = hashlib.sha256(data).hexdigest()
    with aws_environment():
        moto = MotoService()
        try:
            bucket = moto.new_bucket()
            moto.client().put_object(Bucket=bucket, Key=object_key(sha), Body=data)
            [listed] = moto.objects(bucket)
            assert (listed.key, listed.size) == (f"bench/objects/{sha[:2]}/{sha[2:4]}/{sha}",
                                                 len(data))
            assert moto.usage().cpu_s > 0
            moto.delete_bucket(bucket)
        finally:
            moto.close()


def test_group_sets_share_the_load_groups_files() -> None:
    """The many-agents figure syncs the load group's set: same spec, so the same folder in
    bench/.data whichever group made it."""
    from bench import load

    for quick in (True, False):
        specs = scaleout.set_specs(quick=quick)
        assert set(specs) == {*scaleout.SETS, scaleout.LOAD_SET}
        assert specs[scaleout.LOAD_SET] == load.load_set_spec(load.load_shape(quick=quick))


def test_each_figure_is_its_own_attempt(tmp_path: Path) -> None:
    """bench.run's attempt keeps a failure in the report and goes on: the group hands it each
    figure separately (here an attempt that runs nothing)."""
    names: list[str] = []
    result = scaleout.measure(tmp_path, {}, quick=True, runs=None,
                              attempt=lambda what, _action: names.append(what))
    assert len(names) == 3 and result.samples == {}
    assert any("first syncs" in n for n in names) and any("manifest" in n for n in names)
    assert any("two servers" in n for n in names)
