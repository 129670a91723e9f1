"""Hostile and odd files in a watch folder: each has a documented outcome (hostile.py), the
agent never blocks on any of them, and everything that should sync arrives byte-identical.
Also files deleted between scan and upload, and files growing while they are uploaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.chaos.hostile import SKIPPED, SYNCED, make_odd_folder
from tests.chaos.scenario import final_verification, queue_depth, wait_converged, write_photos
from tests.chaos.tally import TALLY
from tests.support.daemons import (
    PYTHON,
    Daemon,
    ServerHandle,
    _env,
    free_port,
    make_agent,
    start_server,
    wait_until,
)
from tests.support.photos import make_raw_like
from tests.support.pki import TestPki
from tests.support.stored import library_sha

pytestmark = pytest.mark.chaos

# Root reads any file; dropping these capabilities makes "permission denied" real for the agent.
DROP_FILE_OVERRIDES = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
                       "--inh-caps", "-dac_override,-dac_read_search"]


def _once_command(config: Path) -> list[str]:
    base = [PYTHON, "-m", "photonic.cli", "agent", "--config", str(config), "--once"]
    if os.geteuid() == 0 and shutil.which("setpriv"):
        return DROP_FILE_OVERRIDES + base
    return base


def test_odd_files_have_their_documented_outcomes_and_never_block(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """Truncated/corrupt JPEGs, EXIF bombs, files without EXIF, empty files, unicode, newline,
    dash-led and 255-byte names, deep nesting, symlinks in and out, a FIFO, a device and an
    unreadable file: `agent --once` finishes (nothing blocks), every syncable file is stored
    byte for byte, every other one is skipped for its documented reason."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    folder = agent.watches["photos"]
    odd = make_odd_folder(folder, tmp_path / "outside")
    TALLY.hostile_files += len(odd.files)
    proc = subprocess.run(_once_command(agent.config_path), capture_output=True, text=True,
                          timeout=90, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    synced = [rel for rel, outcome in odd.files if outcome.startswith(SYNCED)]
    assert summary["files_uploaded"] + summary["files_deduplicated"] == len(synced), summary
    excluded = {f"laptop/photos/{rel}": "permission denied" for rel in odd.unreadable}
    unreadable = os.geteuid() != 0 or shutil.which("setpriv") is not None
    if not unreadable:  # root without setpriv reads it, and then it must be synced
        excluded = {}
    report = final_verification(server, [agent], excluded=excluded)
    assert report.photos_verified == len(synced) + (0 if unreadable else 1)
    skipped = {rel for rel, outcome in odd.files if outcome.startswith(SKIPPED)}
    assert skipped <= {k.removeprefix("laptop/photos/") for k in report.excluded}
    assert library_sha(server, "laptop", "photos", "link_outside.jpg") is None


def test_files_deleted_or_grown_between_scan_and_upload(
        tmp_path: Path, pki: TestPki, daemons: list[Daemon]) -> None:
    """Files queued while the server is away, then deleted or appended to before it returns:
    deleted files are dropped from the queue (nothing to upload), grown files are re-hashed
    and their final content is stored."""
    port = free_port()
    agent = make_agent(tmp_path / "laptop", pki, "laptop", [f"127.0.0.1:{port}"])
    daemons.append(agent.daemon)
    photos = write_photos(agent.watches["photos"], range(1, 21))
    agent.start()
    wait_until(lambda: queue_depth(agent.buffer) == 20, 30, message="20 files queued")
    for path in photos[:3]:
        path.unlink()
    for path in photos[3:6]:
        with open(path, "ab") as f:
            f.write(b"appended after the scan")
    TALLY.hostile_files += 6
    server = start_server(tmp_path / "server", pki, port=port)
    daemons.append(server.daemon)
    wait_converged(server, [agent])
    report = final_verification(server, [agent])
    assert report.photos_verified == 17


@pytest.mark.local_objects("waits for the upload's first bytes in the local partial/ folder; "
                           "in S3 mode an upload under one part is held in memory, unseen")
def test_file_growing_while_it_is_uploaded(tmp_path: Path, pki: TestPki, server: ServerHandle,
                                           daemons: list[Daemon]) -> None:
    """A file appended to in the middle of its upload: the agent aborts that upload (the bytes
    no longer match the manifest), re-hashes, and the library ends with the final content."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server, extra={
        "network": {"max_bandwidth": "256KB/s", "chunk_size": "64KiB"}})
    daemons.append(agent.daemon)
    big = make_raw_like(agent.watches["photos"] / "growing.NEF", seed=99, size_bytes=1_500_000)
    agent.start()
    partial = server.storage / "partial"
    wait_until(lambda: any(p.stat().st_size > 0 for p in partial.glob("*.part")), 30,
               message="the upload to start")
    with open(big, "ab") as f:
        f.write(os.urandom(50_000))
    TALLY.hostile_files += 1
    wait_converged(server, [agent])
    report = final_verification(server, [agent])
    assert report.photos_verified == 1
