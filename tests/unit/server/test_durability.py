"""GroupSync: one barrier covers every writer that noted its changes before the barrier began,
nobody is told "durable" by a barrier that failed (nor by a later one, if the failure may have
lost their writes), and concurrent writers share barriers."""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from photonic.errors import Transient
from photonic.server import durability
from photonic.server.durability import GroupSync
from photonic.server.fs_sync import FilesystemSync
from tests.chaos.diskfull import failing_disk


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


def _syncfs_failing(fail: list[bool], calls: list[int]) -> Callable[[int], int]:
    """A syncfs that fails with EIO while fail[0] is set (as the kernel reports a lost write)."""
    def syncfs(_fd: int) -> int:
        calls.append(1)
        if fail[0]:
            ctypes.set_errno(errno.EIO)
            return -1
        return 0
    return syncfs


def test_a_filesystem_run_is_one_syncfs_instead_of_a_fsync_per_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folders: list[str] = []
    monkeypatch.setattr(durability, "fsync_directory", folders.append)
    calls: list[int] = []
    order: list[str] = []
    filesystem = FilesystemSync(tmp_path, _syncfs_failing([False], calls))
    sync = GroupSync(lambda: order.append(f"catalog after {len(calls)} syncfs"), filesystem)
    assert sync.covers_contents
    assert not GroupSync(lambda: None).covers_contents
    sync.note_dirs([tmp_path / "a", tmp_path / "b"])
    sync.wait_durable()
    assert (folders, calls, order) == ([], [1], ["catalog after 1 syncfs"])
    filesystem.close()


def test_a_failed_run_fails_every_writer_whose_writes_it_may_have_lost(tmp_path: Path) -> None:
    """syncfs reports a write error once, to whichever run asks first. A writer that marked
    before that run failed is refused even when its own, later run succeeds; a writer that
    marked after it is not."""
    fail = [False]
    filesystem = FilesystemSync(tmp_path, _syncfs_failing(fail, []))
    sync = GroupSync(lambda: None, filesystem)
    before = sync.mark()
    fail[0] = True
    with pytest.raises(OSError) as raised:
        sync.wait_durable()  # another writer's run meets the error
    assert raised.value.errno == errno.EIO
    assert "syncfs of the store's filesystem failed" in str(raised.value)
    fail[0] = False
    with pytest.raises(Transient, match="write error"):
        sync.wait_durable(since=before)
    after = sync.mark()
    sync.wait_durable(since=after)
    sync.wait_durable()  # no mark: only the run's own outcome counts
    filesystem.close()


def test_a_real_write_error_reported_to_another_run_still_fails_the_writer(
        tmp_path: Path) -> None:
    """The same on a real failing disk: a photo written before the disk broke is never
    reported durable, although the kernel tells only the first syncfs and a later one
    succeeds; a photo written after the disk recovered is, and is on the disk."""
    with failing_disk(tmp_path / "disk") as disk:
        filesystem = FilesystemSync(disk.mount)
        sync = GroupSync(lambda: None, filesystem)
        try:
            before = sync.mark()
            (disk.mount / "lost.jpg").write_bytes(b"x" * 3000)
            disk.break_writes()
            with pytest.raises(OSError) as raised:
                sync.wait_durable()
            # The loop device passes its backing store's ENOSPC up; a real disk says EIO.
            assert raised.value.errno in (errno.EIO, errno.ENOSPC)
            disk.heal()
            with pytest.raises(Transient):
                sync.wait_durable(since=before)
            after = sync.mark()
            (disk.mount / "kept.jpg").write_bytes(b"y" * 3000)
            sync.wait_durable(since=after)
        finally:
            filesystem.close()
        disk.remount()
        assert (disk.mount / "kept.jpg").read_bytes() == b"y" * 3000
