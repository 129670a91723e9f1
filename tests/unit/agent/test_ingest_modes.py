"""Ingest copies keep the permissions of the photo they copy, whatever the umask."""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from photonic.agent.ignore import IgnoreRules
from photonic.agent.scanner import Scanner
from photonic.agent.statedb import AgentStateDB
from photonic.models import WatchMode


@dataclass(frozen=True)
class Watch:
    path: Path
    name: str = "card"
    mode: WatchMode = WatchMode.INGEST


def test_ingest_copy_of_a_private_photo_stays_private(tmp_path: Path) -> None:
    """Under umask 022, the buffer copy of a 0600 photo is 0600 and of a 0640 one 0640 (not
    0644): another local user cannot read a private photo from the agent's buffer."""
    card = tmp_path / "card"
    card.mkdir()
    modes = {"private.jpg": 0o600, "group.jpg": 0o640}
    for name, mode in modes.items():
        (card / name).write_bytes(name.encode())
        (card / name).chmod(mode)
    old = os.umask(0o022)
    db = AgentStateDB(tmp_path / "buffer" / "agent.db")
    try:
        scanner = Scanner(db, [Watch(card)], IgnoreRules(), buffer_path=tmp_path / "buffer",
                          max_buffer_size_bytes=1 << 30)
        asyncio.run(scanner.scan_watch(Watch(card)))
        copies = {p.relative_path: p.source_path for p in db.pending(10)}
    finally:
        db.close()
        os.umask(old)
    assert set(copies) == set(modes)
    for name, mode in modes.items():
        assert copies[name].is_relative_to(tmp_path / "buffer" / "ingest")
        assert stat.S_IMODE(copies[name].stat().st_mode) == mode, name
