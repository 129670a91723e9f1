"""bench.baseline: the earlier revision is exported once and run by its own code, the two
sides start pairs equally often, and each row sets the working tree against the revision."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench import baseline, symmetric
from bench.report import PHOTONIC


def test_an_exported_revision_runs_its_own_code_and_is_reused(tmp_path: Path) -> None:
    commit, folder = baseline.export_revision("HEAD~1", cache_dir=tmp_path)
    assert (folder / ".commit").read_text().strip() == commit
    assert (folder / "photonic" / "cli.py").is_file()
    (folder / "photonic" / "_marker_of_this_export.py").write_text("")
    assert baseline.export_revision(commit, cache_dir=tmp_path) == (commit, folder)
    assert (folder / "photonic" / "_marker_of_this_export.py").exists()  # not made again
    argv = baseline.checkout_argv(folder)
    assert argv[-2:] == ["-m", "photonic.cli"]
    imported = subprocess.run(  # from the repository's folder, as the bench runs
        [*argv[:-2], "-c", "import photonic; print(photonic.__file__)"],
        capture_output=True, text=True, check=True, cwd=baseline.REPO_DIR).stdout.strip()
    assert imported == str(folder / "photonic" / "__init__.py")


def test_with_an_even_run_count_each_side_starts_a_pair_as_often() -> None:
    tools = [PHOTONIC, baseline.baseline_tool("59c051fc7e43" + "0" * 28)]
    plan = symmetric.interleaved_plan(4, ["large"], symmetric.MODES, tools)
    firsts = [plan[i].tool for i in range(0, len(plan), 2)]
    assert firsts.count(tools[0]) == firsts.count(tools[1])


def test_every_row_compares_the_working_tree_with_the_revision() -> None:
    rows = baseline.figure_specs("photonic@59c051f", {"large": 200, "small": 5000},
                                 ["large", "small"])
    assert rows and all(row.peer == "photonic@59c051f" for row in rows)
    assert {row.key for row in rows} >= {"large.warm.mbps", "small.cold.files_per_s",
                                         "small.warm.cpu_per_gb.sender", "small.resync.s",
                                         "second_agent.s"}
