"""AckRecorder: acknowledgements arriving while a group commits form the next group, flush
waits for all of them, and a failed group is reported without losing later ones."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from photonic.agent.acks import Ack, AckRecorder
from photonic.agent.statedb import PendingFile
from photonic.models import ContentHash, ExifSummary


def _ack(i: int) -> Ack:
    f = PendingFile(id=i, watch_name="w", relative_path=f"{i}.jpg", source_path=Path("/x"),
                    sha256=ContentHash(f"{i:064x}"), size=1, mtime_ns=0, exif=ExifSummary(),
                    base_sha256="", incomplete=False, attempts=0, enqueued_unix_ms=0)
    return Ack(f, dedup=False, conflict=False)


def test_acks_arriving_during_a_commit_are_recorded_together() -> None:
    groups: list[list[int]] = []

    async def main() -> None:
        gate = asyncio.Event()

        async def record(acks: list[Ack]) -> None:
            groups.append([a.file.id for a in acks])
            if len(groups) == 1:
                await gate.wait()

        recorder = AckRecorder(record)
        recorder.add(_ack(0))
        await asyncio.sleep(0)  # the first group starts committing alone
        for i in range(1, 50):
            recorder.add(_ack(i))
        gate.set()
        await recorder.flush()

    asyncio.run(main())
    assert groups == [[0], list(range(1, 50))]


def test_a_failed_group_is_raised_and_later_acks_are_still_recorded() -> None:
    recorded: list[int] = []

    async def main() -> None:
        async def record(acks: list[Ack]) -> None:
            if acks[0].file.id == 0:
                raise OSError(28, "No space left on device")
            recorded.extend(a.file.id for a in acks)

        recorder = AckRecorder(record)
        recorder.add(_ack(0))
        with pytest.raises(OSError):
            await recorder.flush()
        recorder.add(_ack(1))
        recorder.add(_ack(2))
        await recorder.flush()

    asyncio.run(main())
    assert recorded == [1, 2]


def test_flush_with_nothing_added_returns_at_once() -> None:
    async def main() -> None:
        async def record(acks: list[Ack]) -> None:
            raise AssertionError("nothing to record")

        await AckRecorder(record).flush()

    asyncio.run(main())
