"""End-to-end: a watch folder that is removed and recreated, missing when the agent starts, or
pulled out and put back (a memory card) is watched again at once, with the DEFAULT rescan
interval (5 minutes): its photos reach the server's library in seconds, not at the next
periodic reconcile scan."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from photonic.config import load_agent_config
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    make_agent,
    sha256_of,
    tree_hashes,
    wait_until,
)
from tests.support.photos import make_jpeg, make_raw_like
from tests.support.pki import TestPki
from tests.support.stored import library_hashes, library_sha

pytestmark = pytest.mark.e2e

SHOOT = datetime(2024, 7, 1, 9, 0, 0)
DURABLE_WITHIN_S = 20.0  # far below the default rescan interval, which must not be what helps
STATUS_POLL_S = 0.25


def _default_rescan_agent(root: Path, pki: TestPki, server: ServerHandle,
                          daemons: list[Daemon]) -> AgentHandle:
    """An agent (not started) whose config leaves rescan_interval at its default."""
    agent = make_agent(root, pki, "laptop", server)
    config: dict[str, Any] = yaml.safe_load(agent.config_path.read_text("utf-8"))
    del config["agent"]["rescan_interval"]
    agent.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert load_agent_config(agent.config_path).rescan_interval_s >= 300
    daemons.append(agent.daemon)
    return agent


def _status_where(agent: AgentHandle, check: Callable[[dict[str, Any]], bool], what: str,
                  timeout_s: float = 30) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = agent.status()
        return status if check(status) else None
    found: dict[str, Any] = wait_until(
        probe, timeout_s, STATUS_POLL_S,
        f"status: {what}; agent log:\n{agent.daemon.log()[-3000:]}")
    return found


def _watch_state(status: dict[str, Any]) -> str:
    return str(next(w["state"] for w in status["watches"] if w["name"] == "photos"))


def _durable(server: ServerHandle, sources: dict[str, str]) -> bool:
    """Every (relative path: sha256) of sources is byte-identical in the server's library."""
    return all(library_sha(server, "laptop", "photos", rel) == sha
               for rel, sha in sources.items())


def _wait_durable(agent: AgentHandle, server: ServerHandle, sources: dict[str, str],
                  since_s: float, what: str) -> float:
    """Waits until sources are durable; returns the seconds it took since since_s."""
    wait_until(lambda: _durable(server, sources), DURABLE_WITHIN_S, 0.1,
               f"{what} in the library within {DURABLE_WITHIN_S}s; agent log:\n"
               f"{agent.daemon.log()[-3000:]}")
    latency_s = time.monotonic() - since_s
    print(f"{what}: durable {latency_s:.2f}s after it was written")
    return latency_s


def _synced(agent: AgentHandle, server: ServerHandle, count: int) -> None:
    """Starts agent over `count` photos in its watch and waits until they are in the library."""
    photos = agent.watches["photos"]
    for i in range(count):
        make_raw_like(photos / "trip" / f"DSC_{i:04d}.NEF", seed=6000 + i, size_bytes=20_000)
    agent.start()
    wait_until(lambda: _durable(server, tree_hashes(photos)), 60, 0.2,
               f"the first sync; agent log:\n{agent.daemon.log()[-3000:]}")
    _status_where(agent, lambda s: s["state"] == "monitoring" and _watch_state(s) == "ok",
                  "monitoring, watch OK")


def test_photo_dropped_into_a_removed_and_recreated_watch_folder_is_durable_in_seconds(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """shutil.rmtree of a synced watch folder, mkdir at the same path straight away, and a
    photo dropped into it: byte-identical in the server's library within 20 s, with a 5-minute
    rescan interval (the old watch died with the folder; only a new one can have seen it)."""
    agent = _default_rescan_agent(tmp_path / "laptop", pki, server, daemons)
    _synced(agent, server, 3)
    photos = agent.watches["photos"]
    shutil.rmtree(photos)
    photos.mkdir()
    written_s = time.monotonic()
    photo = make_jpeg(photos / "IMG_0001.jpg", seed=6100, capture_time=SHOOT)
    _wait_durable(agent, server, {"IMG_0001.jpg": sha256_of(photo)}, written_s,
                  "a photo in a recreated folder")
    assert "event=watch_root_watched" in agent.daemon.log()
    assert agent.daemon.running


def test_watch_folder_created_after_the_agent_started_is_watched(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """An agent started while its watch folder does not exist reports it missing; once the
    folder is created and a photo dropped into it, the photo is durable within 20 s and the
    watch is OK again, with the default rescan interval."""
    agent = _default_rescan_agent(tmp_path / "laptop", pki, server, daemons)
    photos = agent.watches["photos"]
    photos.rmdir()
    agent.start()
    _status_where(agent, lambda s: s["state"] == "monitoring" and _watch_state(s) == "missing",
                  "monitoring with the watch missing")
    photos.mkdir()
    written_s = time.monotonic()
    photo = make_jpeg(photos / "2024" / "IMG_0002.jpg", seed=6200, capture_time=SHOOT)
    _wait_durable(agent, server,
                  {"2024/IMG_0002.jpg": sha256_of(photo)}, written_s, "a photo in a new folder")
    _status_where(agent, lambda s: _watch_state(s) == "ok", "the watch OK", timeout_s=10)


def test_card_put_back_with_new_photos_is_reconciled_on_return(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """A watch folder pulled out (renamed away: a memory card removed) is reported missing at
    once; photos added to it while it is out were there before its new watch existed, so no
    event will ever name them. Put back, the scan on return delivers them byte-identical within
    20 s and brings the watch back to OK, with the default rescan interval."""
    agent = _default_rescan_agent(tmp_path / "laptop", pki, server, daemons)
    _synced(agent, server, 3)
    photos = agent.watches["photos"]
    pulled = tmp_path / "card-reader-out"
    os.rename(photos, pulled)
    agent.daemon.wait_for_log("event=watch_root_missing", timeout_s=10)
    _status_where(agent, lambda s: _watch_state(s) == "missing", "the watch missing",
                  timeout_s=10)
    shot = [make_jpeg(pulled / "trip" / f"IMG_{i:04d}.jpg", seed=6300 + i, capture_time=SHOOT)
            for i in range(2)]
    expected = {f"trip/{p.name}": sha256_of(p) for p in shot}
    put_back_s = time.monotonic()
    os.rename(pulled, photos)
    _wait_durable(agent, server, expected, put_back_s, "photos on a card put back")
    status = _status_where(agent, lambda s: _watch_state(s) == "ok", "the watch OK again",
                           timeout_s=10)
    assert status["queue"]["files"] == 0 or _durable(server, expected)
    library = library_hashes(server, "laptop", "photos")
    assert tree_hashes(photos) == {rel: sha for rel, sha in library.items()
                                   if rel in tree_hashes(photos)}
