"""Building blocks shared by chaos scenarios: seeded photo sets, progress probes, and the
final verify-and-count step every scenario ends with."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.chaos.tally import TALLY
from tests.chaos.verify import AgentFolders, Verification, verify_all
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    queued_count,
    wait_until,
)
from tests.support.photos import make_raw_like
from tests.support.pixels import jpeg_bytes

SMALL_JPEG_SIDE = (320, 240)
RAW_EVERY = 10
RAW_SIZE_BYTES = 300_000


def write_photos(folder: Path, seeds: range, *, prefix: str = "IMG") -> list[Path]:
    """Seeded small JPEGs, with a RAW-like file (several chunks) every RAW_EVERY seeds, spread
    over a few subfolders as a camera import would be."""
    out: list[Path] = []
    for seed in seeds:
        sub = folder / f"day{seed % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        if seed % RAW_EVERY == 0:
            out.append(make_raw_like(sub / f"{prefix}_{seed:04d}.NEF", seed=seed,
                                     size_bytes=RAW_SIZE_BYTES))
            continue
        path = sub / f"{prefix}_{seed:04d}.jpg"
        path.write_bytes(jpeg_bytes(seed=seed, width=SMALL_JPEG_SIDE[0],
                                    height=SMALL_JPEG_SIDE[1]))
        out.append(path)
    return out


def queue_depth(buffer: Path) -> int:
    """Rows in the agent's durable queue (read while the agent runs: SQLite WAL allows it)."""
    db = buffer / "agent.db"
    if not db.exists():
        return -1
    conn = sqlite3.connect(db, timeout=5)
    try:
        (count,) = conn.execute("SELECT COUNT(*) FROM queue").fetchone()
    except sqlite3.OperationalError:
        return -1  # created but not migrated yet
    finally:
        conn.close()
    return int(count)


def commits_logged(server: ServerHandle) -> int:
    return server.daemon.log().count("event=file_committed")


def wait_converged(server: ServerHandle, agents: Sequence[AgentHandle], timeout_s: float = 90,
                   *, excluded: Mapping[str, str] | None = None) -> Verification:
    """Polls the full verification until it passes (the daemons keep running meanwhile).

    The full verification reads and hashes every stored object (in S3 mode through this test
    process's moto server, the one the daemons under test write to), so it runs only once
    every agent's queue is empty, which it requires anyway: polled twice a second while the
    agents still had photos queued, it took the CPU their sync needed."""
    last: list[Verification] = []

    def full() -> Verification:
        last[:] = [verify_all(server.storage, folders_of(agents), [a.buffer for a in agents],
                              excluded=excluded)]
        return last[0]

    def clean() -> bool:
        if any(queued_count(a.buffer) for a in agents):
            return False
        return not full().problems

    try:
        wait_until(clean, timeout_s, interval_s=0.5, message="the library to match the folders")
    except AssertionError as exc:
        summary = full().summary()  # fresh: the last full run may be long past
        logs = "\n".join(f"--- {a.agent_id} log tail:\n{a.daemon.log()[-3000:]}" for a in agents)
        # Taken after the tails: a stuck daemon's tasks say what it waits on.
        dumps = "\n".join(f"--- {a.agent_id} tasks:\n{a.daemon.task_dump()}" for a in agents)
        raise AssertionError(f"{exc}\n{summary}\n{logs}\n--- server log tail:\n"
                             f"{server.daemon.log()[-3000:]}\n{dumps}\n--- server tasks:\n"
                             f"{server.daemon.task_dump()}") from None
    return last[0]


def folders_of(agents: Sequence[AgentHandle]) -> list[AgentFolders]:
    return [(a.agent_id, dict(a.watches)) for a in agents]


def stop(*daemons: Daemon) -> None:
    for d in daemons:
        if d.running:
            d.terminate(20)


def final_verification(server: ServerHandle, agents: Sequence[AgentHandle], *,
                       excluded: Mapping[str, str] | None = None,
                       allow_queued: int = 0) -> Verification:
    """Stops every daemon, runs the full verification once more at rest, counts it, and fails
    the test on any problem. Every chaos scenario ends here."""
    stop(*(a.daemon for a in agents), server.daemon)
    report = verify_all(server.storage, folders_of(agents), [a.buffer for a in agents],
                        excluded=excluded, allow_queued=allow_queued)
    record(report)
    assert not report.problems, report.summary()
    return report


def record(report: Verification) -> None:
    TALLY.photos_verified += report.photos_verified
    TALLY.objects_rehashed += report.objects_checked
    TALLY.objects_mismatched += report.objects_mismatched
    TALLY.photos_lost += report.photos_lost
    TALLY.photos_corrupted += report.photos_corrupted
    TALLY.photos_duplicated += report.photos_duplicated
