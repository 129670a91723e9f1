"""Tests for the settle rules and the watchdog-backed folder watcher."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from photonic.agent.watcher import FolderWatcher, SettledFile, SettleTracker

# watchdog 7 warns about its own duplicate inotify callbacks when nested directories appear.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")

SETTLE_S = 1.0
INCOMPLETE_S = 30.0
WAIT_S = 10.0


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def jpeg_bytes(color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(out, format="JPEG")
    return out.getvalue()


def tracker(clock: FakeClock) -> SettleTracker:
    return SettleTracker(settle_delay_s=SETTLE_S, incomplete_timeout_s=INCOMPLETE_S, clock=clock)


def test_file_written_in_pieces_is_due_only_after_it_stops_changing(tmp_path: Path) -> None:
    """Each write (and its event) restarts the timer; due once, settle_delay after the last."""
    clock = FakeClock()
    settle = tracker(clock)
    photo = tmp_path / "a.jpg"
    data = jpeg_bytes()
    quarter = len(data) // 4
    photo.write_bytes(data[:quarter])
    settle.touch("w", photo)
    assert settle.next_check_in_s() == 0.0
    assert settle.due() == []
    for i in range(1, 4):
        clock.advance(SETTLE_S * 0.9)
        with photo.open("ab") as out:
            out.write(data[i * quarter : (i + 1) * quarter] if i < 3 else data[i * quarter :])
        settle.touch("w", photo)
        assert settle.due() == []
    assert settle.next_check_in_s() == pytest.approx(SETTLE_S)
    clock.advance(SETTLE_S * 0.9)
    assert settle.due() == []
    clock.advance(SETTLE_S * 0.1)
    assert settle.due() == [SettledFile("w", photo, incomplete=False)]
    assert len(settle) == 0
    assert settle.next_check_in_s() is None


def test_closed_complete_file_settles_after_the_short_closed_delay(tmp_path: Path) -> None:
    """A writer's close (CLOSE_WRITE) shortens the quiet period for a complete JPEG, but an
    incomplete one still waits, and a later plain modification restores the full delay."""
    clock = FakeClock()
    settle = SettleTracker(settle_delay_s=SETTLE_S, incomplete_timeout_s=INCOMPLETE_S,
                           clock=clock, closed_settle_delay_s=0.2)
    photo = tmp_path / "closed.jpg"
    photo.write_bytes(jpeg_bytes())
    settle.touch("w", photo, closed=True)
    assert settle.due() == []
    clock.advance(0.2)
    assert settle.due() == [SettledFile("w", photo, incomplete=False)]

    half = tmp_path / "half.jpg"
    half.write_bytes(jpeg_bytes()[:300])
    settle.touch("w", half, closed=True)
    assert settle.due() == []
    clock.advance(SETTLE_S)
    assert settle.due() == [], "an incomplete JPEG is not settled by a close"

    reopened = tmp_path / "reopened.jpg"
    reopened.write_bytes(jpeg_bytes())
    settle.touch("w", reopened, closed=True)
    settle.touch("w", reopened)  # modified again after the close
    assert settle.due() == []
    clock.advance(0.2)
    assert all(s.path != reopened for s in settle.due())
    clock.advance(SETTLE_S)
    assert SettledFile("w", reopened, incomplete=False) in settle.due()


def test_change_without_an_event_still_restarts_the_timer(tmp_path: Path) -> None:
    """A write the watcher never reported is caught by the size/mtime check at the deadline."""
    clock = FakeClock()
    settle = tracker(clock)
    photo = tmp_path / "quiet.jpg"
    data = jpeg_bytes()
    photo.write_bytes(data[:100])
    settle.touch("w", photo)
    assert settle.due() == []
    clock.advance(SETTLE_S / 2)
    with photo.open("ab") as out:
        out.write(data[100:])
    clock.advance(SETTLE_S / 2)
    assert settle.due() == []
    clock.advance(SETTLE_S * 0.99)
    assert settle.due() == []
    clock.advance(SETTLE_S * 0.01)
    assert settle.due() == [SettledFile("w", photo, incomplete=False)]


def test_truncated_jpeg_waits_for_incomplete_timeout_then_is_flagged(tmp_path: Path) -> None:
    """A JPEG without EOI is not due at settle time, but is due with incomplete=True later."""
    clock = FakeClock()
    settle = tracker(clock)
    photo = tmp_path / "cut.jpg"
    photo.write_bytes(jpeg_bytes()[:-200])
    settle.touch("w", photo)
    assert settle.due() == []
    clock.advance(SETTLE_S)
    assert settle.due() == []
    assert len(settle) == 1
    assert settle.next_check_in_s() == pytest.approx(INCOMPLETE_S - SETTLE_S)
    clock.advance(INCOMPLETE_S - SETTLE_S - 0.01)
    assert settle.due() == []
    clock.advance(0.01)
    assert settle.due() == [SettledFile("w", photo, incomplete=True)]
    assert len(settle) == 0


def test_vanished_and_missing_files_are_forgotten(tmp_path: Path) -> None:
    """A path deleted while settling, or touched but never there, is dropped silently."""
    clock = FakeClock()
    settle = tracker(clock)
    gone = tmp_path / "gone.jpg"
    gone.write_bytes(jpeg_bytes())
    settle.touch("w", gone)
    settle.touch("w", tmp_path / "never.jpg")
    settle.touch("w", tmp_path)  # a directory is not a candidate
    assert settle.due() == []
    assert len(settle) == 1
    gone.unlink()
    clock.advance(SETTLE_S)
    assert settle.due() == []
    assert len(settle) == 0


def test_touch_during_due_keeps_the_fresh_timer(tmp_path: Path) -> None:
    """A path touched while due() is checking it is not emitted and stays tracked."""
    clock = FakeClock()
    photo = tmp_path / "race.jpg"
    photo.write_bytes(jpeg_bytes())

    def touch_while_checking(path: Path) -> bool:
        settle.touch("w", path)
        return True

    settle = SettleTracker(
        settle_delay_s=SETTLE_S,
        incomplete_timeout_s=INCOMPLETE_S,
        clock=clock,
        is_complete=touch_while_checking,
    )
    settle.touch("w", photo)
    settle.due()
    clock.advance(SETTLE_S)
    assert settle.due() == []
    assert len(settle) == 1
    assert settle.next_check_in_s() == 0.0


@dataclass(frozen=True)
class Watch:
    name: str
    path: Path


Settled = asyncio.Queue[SettledFile]
Scenario = Callable[[FolderWatcher, Settled], Awaitable[None]]


def run_watcher(
    watches: list[Watch],
    scenario: Scenario,
    *,
    fail_first: bool = False,
) -> None:
    """Runs scenario against a started watcher whose reports land in a queue."""

    async def main() -> None:
        settled: Settled = asyncio.Queue()
        calls = 0

        async def on_settled(items: list[SettledFile]) -> None:
            nonlocal calls
            calls += 1
            for item in items:
                await settled.put(item)
            if fail_first and calls == 1:
                raise RuntimeError("consumer failed")

        watcher = FolderWatcher(
            watches,
            on_settled,
            settle_delay_s=0.2,
            incomplete_timeout_s=5.0,
            ignore=lambda _watch, rel: rel.endswith(".tmp"),
        )
        await watcher.start()
        try:
            await scenario(watcher, settled)
        finally:
            await watcher.stop()
            await watcher.stop()

    asyncio.run(main())


async def next_settled(settled: Settled) -> SettledFile:
    return await asyncio.wait_for(settled.get(), WAIT_S)


async def sentinel_then_rest(
    root: Path, settled: Settled, name: str = "sentinel.jpg"
) -> list[SettledFile]:
    """Writes a last file and returns every report up to and including it."""
    (root / name).write_bytes(jpeg_bytes("blue"))
    seen: list[SettledFile] = []
    while not seen or seen[-1].path.name != name:
        seen.append(await next_settled(settled))
    return seen


def test_slowly_written_jpeg_is_reported_once_and_complete(tmp_path: Path) -> None:
    """A JPEG written in 4 pieces with short pauses is reported exactly once, complete."""

    async def scenario(_w: FolderWatcher, settled: Settled) -> None:
        data = jpeg_bytes()
        step = len(data) // 4 + 1
        with (tmp_path / "slow.jpg").open("wb") as out:
            for start in range(0, len(data), step):
                out.write(data[start : start + step])
                out.flush()
                await asyncio.sleep(0.05)  # the slow writer being simulated, not synchronization
        first = await next_settled(settled)
        assert first == SettledFile("card", tmp_path / "slow.jpg", incomplete=False)
        rest = await sentinel_then_rest(tmp_path, settled)
        assert [s.path.name for s in rest] == ["sentinel.jpg"]

    run_watcher([Watch("card", tmp_path)], scenario)


def test_file_in_new_nested_directory_is_reported(tmp_path: Path) -> None:
    """A photo created inside freshly made nested directories is reported with its path."""

    async def scenario(_w: FolderWatcher, settled: Settled) -> None:
        nested = tmp_path / "2024" / "06" / "wedding"
        nested.mkdir(parents=True)
        (nested / "IMG_1.jpg").write_bytes(jpeg_bytes())
        assert await next_settled(settled) == SettledFile("w", nested / "IMG_1.jpg", False)

    run_watcher([Watch("w", tmp_path)], scenario)


def test_directory_moved_into_watch_reports_its_files(tmp_path: Path) -> None:
    """Renaming a folder of photos into the watch reports every photo inside it."""
    root = tmp_path / "watch"
    root.mkdir()
    outside = tmp_path / "import" / "sub"
    outside.mkdir(parents=True)
    for i in range(3):
        (outside / f"P{i}.jpg").write_bytes(jpeg_bytes())

    async def scenario(_w: FolderWatcher, settled: Settled) -> None:
        os.rename(tmp_path / "import", root / "import")
        got = {(await next_settled(settled)).path for _ in range(3)}
        assert got == {root / "import" / "sub" / f"P{i}.jpg" for i in range(3)}

    run_watcher([Watch("w", root)], scenario)


def test_ignored_names_and_deletions_produce_nothing(tmp_path: Path) -> None:
    """A *.tmp file is never reported; a file renamed from .tmp is; deleting reports nothing."""
    old = tmp_path / "old.jpg"
    old.write_bytes(jpeg_bytes())

    async def scenario(_w: FolderWatcher, settled: Settled) -> None:
        (tmp_path / "download.jpg.tmp").write_bytes(jpeg_bytes())
        (tmp_path / "partial.tmp").write_bytes(jpeg_bytes())
        os.rename(tmp_path / "download.jpg.tmp", tmp_path / "download.jpg")
        old.unlink()
        first = await next_settled(settled)
        assert first.path == tmp_path / "download.jpg"
        rest = await sentinel_then_rest(tmp_path, settled)
        assert [s.path.name for s in rest] == ["sentinel.jpg"]

    run_watcher([Watch("w", tmp_path)], scenario)


def test_consumer_failure_does_not_stop_the_loop_and_missing_root_is_skipped(
    tmp_path: Path,
) -> None:
    """on_settled raising is logged; later files are still reported; a missing root is skipped."""

    async def scenario(_w: FolderWatcher, settled: Settled) -> None:
        (tmp_path / "one.jpg").write_bytes(jpeg_bytes())
        assert (await next_settled(settled)).path.name == "one.jpg"
        (tmp_path / "two.jpg").write_bytes(jpeg_bytes())
        assert (await next_settled(settled)).path.name == "two.jpg"

    run_watcher(
        [Watch("gone", tmp_path / "no-such-dir"), Watch("w", tmp_path)],
        scenario,
        fail_first=True,
    )
