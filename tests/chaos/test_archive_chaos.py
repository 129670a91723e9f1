"""Archive replication under crashes (issue 21, test 4): a primary replicating to an archive
node over a throttled link is SIGKILLed, or the archive is, at seeded random moments after
each wave of photos lands on the primary; every object must end confirmed on the archive,
byte-identical, each path with exactly the primary's versions, nothing twice."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.chaos.scenario import write_photos
from tests.chaos.tally import TALLY
from tests.support.archive import (
    archive_library,
    start_archive,
    start_primary,
    unconfirmed_versions,
)
from tests.support.daemons import (
    Daemon,
    ServerHandle,
    catalog_rows,
    make_agent,
    sha256_of,
    tree_hashes,
    wait_until,
)
from tests.support.photos import make_raw_like
from tests.support.pki import TestPki

pytestmark = [pytest.mark.chaos, pytest.mark.local_objects(
    "replication to an archive node copies local objects")]

SEED = 20261206
KILLS = 8
WAVE = 4
BIG_BYTES = 1_500_000
"""One file per wave this large: at the node's 1 MB/s it is in flight for over a second, so
kills land mid-file (a partial on the archive, resumed after)."""
THROTTLE = {"max_bandwidth": "1MB/s"}


def _versions_per_path(server: ServerHandle) -> dict[str, int]:
    rows = catalog_rows(server, "SELECT l.agent_id, l.watch_name, l.rel_path, COUNT(*) "
                        "FROM versions v JOIN locations l ON l.id = v.location_id "
                        "GROUP BY l.id, l.agent_id, l.watch_name, l.rel_path")
    return {f"{a}/{w}/{r}": int(n) for a, w, r, n in rows}


def _verify(primary: ServerHandle, archive: ServerHandle) -> None:
    """At rest: the archive's tree under library/primary1/ equals the primary's library,
    every archive object hashes to its name, and each path has the primary's versions."""
    want = tree_hashes(primary.storage / "library" / "laptop")
    got = tree_hashes(archive_library(archive) / "laptop")
    TALLY.photos_verified += len(want)
    TALLY.photos_lost += len(set(want) - set(got))
    TALLY.photos_corrupted += sum(got[p] != h for p, h in want.items() if p in got)
    objects = [p for p in (archive.storage / "objects").rglob("*") if p.is_file()]
    TALLY.objects_rehashed += len(objects)
    TALLY.objects_mismatched += sum(sha256_of(p) != p.name for p in objects)
    primary_versions = _versions_per_path(primary)
    # The archive files them as <primary>/<agent>/<watch/rel>: drop the primary's id.
    mapped = {path.split("/", 1)[1]: n for path, n in _versions_per_path(archive).items()}
    TALLY.photos_duplicated += sum(max(0, mapped.get(p, 0) - n)
                                   for p, n in primary_versions.items())
    assert got == want
    assert all(sha256_of(p) == p.name for p in objects)
    assert mapped == primary_versions
    assert unconfirmed_versions(primary) == 0


def test_primary_and_archive_killed_during_replication_lose_nothing(
        tmp_path: Path, pki: TestPki, daemons: list[Daemon]) -> None:
    """Eight SIGKILLs, each of the primary or the archive (seeded), at a seeded moment after
    a wave of photos (one of them 1.5 MB at a 1 MB/s replication limit) reached the primary:
    after the last restart every version is confirmed for the node and the archive holds
    each, intact, exactly once."""
    rng = random.Random(SEED)
    archive = start_archive(tmp_path / "archive", pki)
    daemons.append(archive.daemon)
    primary = start_primary(tmp_path / "primary", pki, archive.endpoint, THROTTLE)
    daemons.append(primary.daemon)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", primary)
    photos = agent.watches["photos"]
    for kill in range(KILLS):
        write_photos(photos, range(kill * WAVE, kill * WAVE + WAVE - 1))
        make_raw_like(photos / "big" / f"BIG_{kill:02d}.NEF", seed=1000 + kill,
                      size_bytes=BIG_BYTES)
        agent.once()
        time.sleep(rng.uniform(0.0, 1.5))
        victim = primary if rng.random() < 0.5 else archive
        victim.daemon.kill()
        TALLY.server_kills += 1
        victim.start()
    wait_until(lambda: unconfirmed_versions(primary) == 0, 120,
               message="every version confirmed on the archive")
    primary.daemon.terminate()
    archive.daemon.terminate()
    _verify(primary, archive)
