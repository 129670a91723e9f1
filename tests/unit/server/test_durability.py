"""GroupSync: one barrier covers every writer that noted its changes before the barrier began,
nobody is told "durable" by a barrier that failed, and concurrent writers share barriers."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from photonic.server import durability
from photonic.server.durability import GroupSync


def test_a_barrier_fsyncs_every_noted_folder_and_then_the_catalog(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    monkeypatch.setattr(durability, "fsync_directory", lambda d: order.append(os.path.basename(d)))
    sync = GroupSync(lambda: order.append("catalog"))
    sync.note_dirs([tmp_path / "b", tmp_path / "a"])
    sync.note_dirs([tmp_path / "a"])
    sync.wait_durable()
    assert order == ["a", "b", "catalog"]
    order.clear()
    sync.wait_durable()  # nothing new noted: the catalog is still synced (rows may be new)
    assert order == ["catalog"]


def test_a_failed_barrier_keeps_its_folders_for_the_next_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    monkeypatch.setattr(durability, "fsync_directory", lambda d: synced.append(os.path.basename(d)))
    fail = [True]

    def catalog() -> None:
        if fail[0]:
            raise OSError(28, "No space left on device")

    sync = GroupSync(catalog)
    sync.note_dirs([tmp_path / "x"])
    with pytest.raises(OSError):
        sync.wait_durable()
    fail[0] = False
    synced.clear()
    sync.wait_durable()
    assert synced == ["x"]


def test_a_folder_removed_by_hand_does_not_wedge_every_later_barrier(tmp_path: Path) -> None:
    sync = GroupSync(lambda: None)
    sync.note_dirs([tmp_path / "gone"])
    sync.wait_durable()
    sync.wait_durable()


def test_writers_waiting_during_a_barrier_share_the_next_one(tmp_path: Path) -> None:
    """While one barrier runs, every writer that arrives waits and then one more barrier
    covers them all: barriers run stays far below the number of callers."""
    inside = threading.Event()
    release = threading.Event()
    runs: list[int] = []

    def slow_catalog() -> None:
        runs.append(1)
        if len(runs) == 1:
            inside.set()
            release.wait(10)

    sync = GroupSync(slow_catalog)
    first = threading.Thread(target=sync.wait_durable)
    first.start()
    assert inside.wait(10)
    waiters = [threading.Thread(target=sync.wait_durable) for _ in range(12)]
    for t in waiters:
        t.start()
    release.set()
    for t in [first, *waiters]:
        t.join(10)
        assert not t.is_alive()
    assert sync.callers_covered == 13
    assert sync.barriers_run == 2


def test_a_writer_arriving_during_a_barrier_is_not_covered_by_it(tmp_path: Path) -> None:
    """The running barrier may have begun before this writer's changes: it must wait for a
    barrier that starts after it arrived."""
    inside = threading.Event()
    release = threading.Event()
    runs: list[int] = []

    def catalog() -> None:
        runs.append(1)
        if len(runs) == 1:
            inside.set()
            release.wait(10)

    sync = GroupSync(catalog)
    first = threading.Thread(target=sync.wait_durable)
    first.start()
    assert inside.wait(10)
    done = threading.Event()

    def late() -> None:
        sync.wait_durable()
        done.set()

    second = threading.Thread(target=late)
    second.start()
    assert not done.wait(0.2)  # still held: only the first barrier has run
    release.set()
    first.join(10)
    second.join(10)
    assert done.is_set()
    assert len(runs) == 2
