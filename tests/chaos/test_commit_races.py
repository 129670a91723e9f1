"""The cancel race of the durability audit, 50 times with random timing: the first stream ends
before, during or after its slowed commit, the second stream arrives early or late, and the
sync is slow by a random amount. Whatever the interleaving, the object hashes to its name,
nothing damaged is ever acknowledged, no partial is left and no claim stays held."""

from __future__ import annotations

import asyncio
import hashlib
import random
from pathlib import Path

import pytest

from tests.chaos.tally import TALLY
from tests.support.races import cancel_mid_commit, committed_library_files, odd_sized, race_deps

pytestmark = [pytest.mark.chaos, pytest.mark.local_objects(
    "races commits in-process on the local ContentStore and library tree")]

RUNS = 50
SEED = 20261206


def test_fifty_random_interleavings_never_store_or_acknowledge_damaged_bytes(
        tmp_path: Path) -> None:
    """Each run uses a fresh store and fresh content (1-6 MiB, never block-aligned)."""
    rng = random.Random(SEED)
    acknowledged = 0
    for run in range(RUNS):
        root = tmp_path / f"run{run}"
        root.mkdir()
        deps, sync, filesystem = race_deps(root)
        content = odd_sized(rng.randint(1, 6) << 20)
        close_after = rng.choice([None, 0.0, rng.uniform(0, 0.03)])
        try:
            outcome = asyncio.run(cancel_mid_commit(
                deps, sync, content, close_after_s=close_after,
                second_after_s=rng.uniform(0, 0.02), hold_s=rng.uniform(0, 0.04)))
        finally:
            deps.catalog.close()
            filesystem.close()
        TALLY.commit_races += 1
        where = f"run {run} (close_after={close_after})"
        assert outcome.object_intact, f"{where}: the object does not hash to its name"
        assert not outcome.second.broken, f"{where}: {outcome.second.broken}"
        assert outcome.acknowledged(), f"{where}: the waiting stream never stored its photo"
        acknowledged += 1
        library = root / "library" / "desktop" / "photos" / "z.jpg"
        assert hashlib.sha256(library.read_bytes()).hexdigest() == hashlib.sha256(
            content).hexdigest(), where
        for path in committed_library_files(deps, outcome):
            assert path.read_bytes() == content, where
        assert list(deps.store.partial.iterdir()) == [], where
        TALLY.photos_verified += 1
        TALLY.objects_rehashed += 1
    assert acknowledged == RUNS
