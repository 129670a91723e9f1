"""Tests that the folder watcher's watches follow their roots, with real watchdog events on
real folders: a root removed and recreated, missing at start, replaced by a rename, pulled
out and put back, or swapped where no event reports it is watched again, and each return is
announced once."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from photonic.agent.watcher import FolderWatcher, SettledFile
from tests.support.pixels import jpeg_bytes

# watchdog 7 warns about its own duplicate inotify callbacks when nested directories appear.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")

WAIT_S = 10.0
EVENTS_ONLY_S = 3600.0  # a periodic root check this rare never runs during a test


@dataclass(frozen=True)
class Watch:
    name: str
    path: Path


@dataclass
class Reports:
    """What a running watcher told: settled files and (watch name, present) root changes."""

    settled: asyncio.Queue[SettledFile] = field(default_factory=asyncio.Queue)
    changes: asyncio.Queue[tuple[str, bool]] = field(default_factory=asyncio.Queue)

    async def next_settled(self) -> SettledFile:
        return await asyncio.wait_for(self.settled.get(), WAIT_S)

    async def next_change(self) -> tuple[str, bool]:
        return await asyncio.wait_for(self.changes.get(), WAIT_S)


@asynccontextmanager
async def watching(watches: list[Watch], *,
                   root_check_interval_s: float = EVENTS_ONLY_S) -> AsyncIterator[Reports]:
    """A started watcher whose reports land in queues; stopped on the way out."""
    reports = Reports()

    async def on_root_changed(name: str, present: bool) -> None:
        await reports.changes.put((name, present))

    async def on_settled(items: list[SettledFile]) -> None:
        for item in items:
            await reports.settled.put(item)

    watcher = FolderWatcher(watches, on_settled, settle_delay_s=0.2,
                            incomplete_timeout_s=5.0, on_root_changed=on_root_changed,
                            root_check_interval_s=root_check_interval_s)
    await watcher.start()
    try:
        yield reports
    finally:
        await watcher.stop()


def write_photo(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(seed=seed, width=64, height=48))
    return path


async def assert_reported(reports: Reports, watch_name: str, path: Path) -> None:
    assert await reports.next_settled() == SettledFile(watch_name, path, incomplete=False)


def test_removed_and_recreated_root_is_watched_again_and_each_return_announced_once(
        tmp_path: Path) -> None:
    """Twice: rmtree of a watched root is announced missing at once, its recreation as back,
    and a photo written into the recreated folder settles and is reported. No periodic check
    runs, so the parent's events alone did it; exactly one change per transition."""
    root = tmp_path / "card"
    write_photo(root / "DCIM" / "old.jpg", seed=1)

    async def scenario() -> None:
        async with watching([Watch("card", root)]) as reports:
            for cycle in range(2):
                shutil.rmtree(root)
                assert await reports.next_change() == ("card", False)
                root.mkdir()
                assert await reports.next_change() == ("card", True)
                photo = write_photo(root / f"IMG_{cycle}.jpg", seed=10 + cycle)
                await assert_reported(reports, "card", photo)
            assert reports.changes.empty()

    asyncio.run(scenario())


def test_root_missing_at_start_is_watched_once_created(tmp_path: Path) -> None:
    """A root three folders below the nearest existing one at start (a card not yet
    inserted) is watched as soon as the whole path is made in one go, announced once, and a
    photo written into it afterwards is reported."""
    root = tmp_path / "media" / "card" / "DCIM"

    async def scenario() -> None:
        async with watching([Watch("card", root)]) as reports:
            root.mkdir(parents=True)
            assert await reports.next_change() == ("card", True)
            photo = write_photo(root / "100CANON" / "IMG_1.jpg", seed=2)
            await assert_reported(reports, "card", photo)
            assert reports.changes.empty()

    asyncio.run(scenario())


def test_root_replaced_by_a_folder_renamed_onto_its_path_is_watched_again(
        tmp_path: Path) -> None:
    """os.rename of another folder onto the (empty) watched root replaces it without the path
    ever being missing: announced once as back, and a photo written into a subfolder of the
    new tree afterwards is reported."""
    root = tmp_path / "card"
    root.mkdir()
    incoming = tmp_path / "incoming"
    (incoming / "2024").mkdir(parents=True)

    async def scenario() -> None:
        async with watching([Watch("card", root)]) as reports:
            os.rename(incoming, root)
            assert await reports.next_change() == ("card", True)
            photo = write_photo(root / "2024" / "IMG_2.jpg", seed=3)
            await assert_reported(reports, "card", photo)
            assert reports.changes.empty()

    asyncio.run(scenario())


def test_root_pulled_out_and_put_back_is_followed_without_reporting_the_absent_folder(
        tmp_path: Path) -> None:
    """A root renamed away (a card pulled) is announced missing at once, and what is written
    into the folder while it is elsewhere is not reported under the root's path: the watch
    did not follow it. Put back, it is announced as back and new photos are reported."""
    root = tmp_path / "card"
    write_photo(root / "old.jpg", seed=4)
    pulled = tmp_path / "pulled"

    async def scenario() -> None:
        async with watching([Watch("card", root)]) as reports:
            os.rename(root, pulled)
            assert await reports.next_change() == ("card", False)
            write_photo(pulled / "shot_while_out.jpg", seed=5)
            os.rename(pulled, root)
            assert await reports.next_change() == ("card", True)
            photo = write_photo(root / "after.jpg", seed=6)
            await assert_reported(reports, "card", photo)
            assert reports.changes.empty()

    asyncio.run(scenario())


def test_root_moved_out_and_straight_back_is_still_announced_back(tmp_path: Path) -> None:
    """A root renamed away and back before the watcher looks is the same folder at the same
    path, but what was written while it was away had no event under the root: it is still
    announced back (perhaps after a missing), so its scan can pick those files up."""
    root = tmp_path / "card"
    root.mkdir()
    away = tmp_path / "away"

    async def scenario() -> None:
        async with watching([Watch("card", root)]) as reports:
            os.rename(root, away)
            write_photo(away / "while_away.jpg", seed=8)
            os.rename(away, root)
            change = await reports.next_change()
            if change == ("card", False):
                change = await reports.next_change()
            assert change == ("card", True)

    asyncio.run(scenario())


def test_root_swapped_with_no_event_is_caught_by_the_periodic_identity_check(
        tmp_path: Path) -> None:
    """A root reached through a symlink that is re-pointed elsewhere (like a share mounted
    over it) changes without any inotify event: the periodic (st_dev, st_ino) check notices,
    announces it back, and a photo written into the new folder is reported."""
    (tmp_path / "a" / "card").mkdir(parents=True)
    (tmp_path / "b" / "card").mkdir(parents=True)
    (tmp_path / "current").symlink_to(tmp_path / "a")
    root = tmp_path / "current" / "card"

    async def scenario() -> None:
        async with watching([Watch("card", root)], root_check_interval_s=0.1) as reports:
            (tmp_path / "next").symlink_to(tmp_path / "b")
            os.replace(tmp_path / "next", tmp_path / "current")
            assert await reports.next_change() == ("card", True)
            write_photo(tmp_path / "b" / "card" / "IMG_3.jpg", seed=7)
            await assert_reported(reports, "card", root / "IMG_3.jpg")
            assert reports.changes.empty()

    asyncio.run(scenario())
