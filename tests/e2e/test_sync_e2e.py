"""End-to-end sync through real daemons: what lands in the library, dedup across agents, resumed
uploads, idle restarts, files rewritten mid-upload, and conflict handling."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from photonic.models import SyncMethod
from photonic.server.fs_sync import choose_sync
from tests.support.daemons import (
    AgentHandle,
    Daemon,
    ServerHandle,
    make_agent,
    queued_count,
    run_cli,
    sha256_of,
    start_server,
    tree_hashes,
    wait_until,
)
from tests.support.photos import (
    make_corrupt_jpeg,
    make_jpeg,
    make_raw_like,
    make_xmp,
)
from tests.support.pki import TestPki
from tests.support.stored import (
    bucket_of,
    library_hashes,
    library_sha,
    library_versions_at,
    received_bytes,
    stored_digests,
)

pytestmark = pytest.mark.e2e

MB = 1_000_000
SHOOT = datetime(2024, 6, 1, 10, 0, 0)
STATUS_POLL_S = 0.25


def _running_agent(agent: AgentHandle, daemons: list[Daemon]) -> AgentHandle:
    """Starts the agent daemon and waits until it has connected and drained its queue."""
    daemons.append(agent.daemon)
    agent.start()
    wait_until(lambda: agent.status()["state"] == "monitoring", 30, STATUS_POLL_S,
               f"{agent.agent_id} to reach MONITORING; log:\n{agent.daemon.log()[-2000:]}")
    return agent


def _drop_photo_set(photos: Path) -> None:
    """Everything a real photo folder holds: EXIF JPEGs, RAW+JPEG+XMP, odd names, broken files."""
    for i in range(3):
        make_jpeg(photos / "2024" / "06-01" / f"IMG_{i:04d}.jpg", seed=100 + i,
                  capture_time=SHOOT + timedelta(minutes=i), gps=(47.37, 8.54))
    make_raw_like(photos / "shoot" / "DSC_0100.NEF", seed=200, size_bytes=2 * MB,
                  capture_time=SHOOT)
    make_jpeg(photos / "shoot" / "DSC_0100.JPG", seed=201, capture_time=SHOOT)
    make_xmp(photos / "shoot" / "DSC_0100.xmp", rating=4)
    make_jpeg(photos / "Ferien Zürich" / "été 2024 — Ünïcode.jpg", seed=300)
    make_jpeg(photos / "日本" / "写真 1.jpg", seed=301)
    make_jpeg(photos / "a" / "b" / "c" / "d" / "deep.jpg", seed=302)
    (photos / "empty.jpg").write_bytes(b"")
    make_corrupt_jpeg(photos / "broken" / "corrupt.jpg", seed=400)


def test_running_agent_syncs_files_dropped_into_the_watch(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """Files created after the daemon started (seen through watchdog events, the reconcile scan
    is an hour away) reach library/<agent>/<watch>/ byte-identical: EXIF JPEGs, a RAW+JPEG+XMP
    unit, unicode and space names, nested folders, a zero-byte file and a corrupt JPEG."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server,
                       extra={"agent": {"rescan_interval": "1h"}})
    _running_agent(agent, daemons)
    photos = agent.watches["photos"]
    _drop_photo_set(photos)
    expected = tree_hashes(photos)
    assert len(expected) == 11
    wait_until(lambda: library_hashes(server, "laptop", "photos") == expected, 60, 0.2,
               f"the library to match the watch folder; agent log:\n{agent.daemon.log()[-3000:]}")


def test_same_photo_from_two_agents_is_stored_once(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """Identical photos from laptop and desktop are stored once in objects/ (with local objects
    both library trees are hard links to it) and the second agent sends no bytes: the server
    answers HAVE."""
    laptop = make_agent(tmp_path / "laptop", pki, "laptop", server)
    desktop = make_agent(tmp_path / "desktop", pki, "desktop", server)
    for i in range(3):
        src = make_jpeg(laptop.watches["photos"] / f"IMG_{i:04d}.jpg", seed=500 + i,
                        capture_time=SHOOT)
        copy = desktop.watches["photos"] / "import" / f"copy_{i}.jpg"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, copy)
    first = laptop.once()
    second = desktop.once()
    assert first["files_uploaded"] == 3
    assert (second["files_deduplicated"], second["files_uploaded"]) == (3, 0), second
    assert second["bytes_sent"] == 0 and second["raw_bytes_sent"] == 0, second
    digests = set(tree_hashes(laptop.watches["photos"]).values())
    assert stored_digests(server) == digests
    for agent in (laptop, desktop):
        assert library_hashes(server, agent.agent_id, "photos") == tree_hashes(
            agent.watches["photos"])
        library = server.library(agent.agent_id, "photos")
        for path in library.rglob("*.jpg") if bucket_of(server) is None else ():
            assert path.stat().st_nlink >= 3, f"{path} is not a hard link into objects/"


@pytest.mark.local_objects("the local partial/ folder; S3 mode resumes from a multipart part "
                           "(test_s3_objects_e2e.py)")
def test_agent_killed_mid_upload_resumes_from_the_partial_offset(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """SIGKILL of the agent during a large upload: the server parks the partial (fsynced), on
    restart its offset is honoured, so fewer bytes than the file are sent again, and the
    result is byte-identical."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server,
                       extra={"network": {"max_bandwidth": "20MB/s"}})
    size = 64 * MB
    big = make_raw_like(agent.watches["photos"] / "DSC_9000.NEF", seed=9000, size_bytes=size)
    sha = sha256_of(big)
    part = server.storage / "partial" / f"{sha}.part"
    daemons.append(agent.daemon)
    agent.start()
    wait_until(lambda: part.exists() and part.stat().st_size > 10 * MB, 60, 0.02,
               f"a partial upload over 10 MB; agent log:\n{agent.daemon.log()[-2000:]}")
    agent.daemon.kill()
    # The server sees the stream end and parks the upload: fsynced, renamed to resume.
    parked = part.with_suffix(".resume")
    kept = wait_until(lambda: parked.exists() and parked.stat().st_size, 30, 0.02,
                      "the server to park the partial upload")
    summary = agent.once()
    assert summary["files_uploaded"] == 1, summary
    assert summary["raw_bytes_sent"] <= size - kept, (summary, kept)
    assert summary["raw_bytes_sent"] < size
    assert sha256_of(server.library("laptop", "photos") / "DSC_9000.NEF") == sha
    assert not part.exists() and not parked.exists()


def test_restart_on_an_unchanged_folder_hashes_and_sends_nothing(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """A second `agent --once` over an unchanged folder re-hashes 0 files and sends 0 bytes:
    the on-disk index (size, mtime, inode) recognises every file."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    for i in range(5):
        make_jpeg(agent.watches["photos"] / "day" / f"IMG_{i:04d}.jpg", seed=600 + i)
    first = agent.once()
    assert (first["files_uploaded"], first["files_hashed"]) == (5, 5), first
    second = agent.once()
    assert second["files_seen"] == 5, second
    assert second["files_hashed"] == 0, second
    assert second["bytes_sent"] == 0 and second["raw_bytes_sent"] == 0, second
    assert second["files_uploaded"] == second["files_deduplicated"] == 0, second


def test_file_rewritten_during_upload_is_stored_whole_never_mixed(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """A large file rewritten in place (new content, new size) while it uploads ends on the
    server as complete version A or complete version B, never a mix; the head is B."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server,
                       extra={"network": {"max_bandwidth": "20MB/s"}})
    target = agent.watches["photos"] / "IMG_7000.jpg"
    version_a = make_corrupt_jpeg(target, seed=7000, size_bytes=40 * MB).read_bytes()
    other = make_corrupt_jpeg(tmp_path / "staging" / "b.jpg", seed=7001, size_bytes=30 * MB)
    version_b = other.read_bytes()
    sha_a, sha_b = sha256_of(target), sha256_of(other)
    assert len(version_a) != len(version_b)
    daemons.append(agent.daemon)
    agent.start()
    wait_until(lambda: received_bytes(server, sha_a) > 4 * MB, 60, 0.02,
               f"version A to be uploading; agent log:\n{agent.daemon.log()[-2000:]}")
    with open(target, "r+b") as f:  # in place, as an editor saving over the original does
        f.truncate(0)
        f.write(version_b)
    wait_until(lambda: library_sha(server, "laptop", "photos", target.name) == sha_b
               and queued_count(agent.buffer) == 0, 60, 0.2,
               f"version B to become the head; agent log:\n{agent.daemon.log()[-3000:]}")
    versions = library_versions_at(server, "laptop", "photos", target.name)
    assert set(versions.values()) <= {sha_a, sha_b}, versions
    assert versions[target.name] == sha256_of(target) == sha_b


def test_rewrite_that_keeps_size_and_mtime_is_caught_by_the_server_and_sent_again(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """A file rewritten in place mid-upload with the same size, then given back its old mtime
    (as some tools do): the agent's size/mtime check cannot see it, the server's SHA-256 does
    and refuses the mix; the agent hashes the file again and the head becomes version B."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server,
                       extra={"network": {"max_bandwidth": "20MB/s"}})
    target = agent.watches["photos"] / "IMG_7100.jpg"
    make_corrupt_jpeg(target, seed=7100, size_bytes=30 * MB)
    other = make_corrupt_jpeg(tmp_path / "staging" / "b.jpg", seed=7101, size_bytes=30 * MB)
    version_b = other.read_bytes()
    sha_a, sha_b = sha256_of(target), sha256_of(other)
    assert target.stat().st_size == len(version_b) and sha_a != sha_b
    before = target.stat()
    daemons.append(agent.daemon)
    agent.start()
    wait_until(lambda: received_bytes(server, sha_a) > 4 * MB, 60, 0.02,
               f"version A to be uploading; agent log:\n{agent.daemon.log()[-2000:]}")
    with open(target, "r+b") as f:
        f.write(version_b)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (target.stat().st_size, target.stat().st_mtime_ns, target.stat().st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino)
    wait_until(lambda: library_sha(server, "laptop", "photos", target.name) == sha_b
               and queued_count(agent.buffer) == 0, 90, 0.2,
               f"version B to become the head; agent log:\n{agent.daemon.log()[-3000:]}")
    assert library_versions_at(server, "laptop", "photos", target.name) == {target.name: sha_b}
    assert "file_changed_during_upload" in agent.daemon.log()
    assert received_bytes(server, sha_a) == 0


def _change_after_losing_the_index(agent: AgentHandle, name: str, seed: int) -> tuple[str, str]:
    """Syncs name, wipes the agent's buffer (a lost index), rewrites the file; old/new sha256."""
    photo = make_jpeg(agent.watches["photos"] / name, seed=seed, capture_time=SHOOT)
    make_jpeg(agent.watches["photos"] / "untouched.jpg", seed=seed + 1, capture_time=SHOOT)
    assert agent.once()["files_uploaded"] == 2
    old = sha256_of(photo)
    shutil.rmtree(agent.buffer)
    make_jpeg(photo, seed=seed + 2, capture_time=SHOOT)
    return old, sha256_of(photo)


def test_manual_policy_parks_a_conflict_until_an_admin_keeps_incoming(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """With conflict_resolution manual, a change not based on the server's head (the agent lost
    its index) is parked: the head stays, GetSyncStatus lists the conflict. `photonic conflicts
    keep-incoming --all` with the admin certificate makes it head and keeps the old as .v1."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server,
                       extra={"sync": {"conflict_resolution": "manual"}})
    old, new = _change_after_losing_the_index(agent, "IMG_0001.jpg", 800)
    summary = agent.once()
    assert summary["conflicts"] == 1, summary
    assert library_versions_at(server, "laptop", "photos", "IMG_0001.jpg") == {
        "IMG_0001.jpg": old}
    remote = json.loads(run_cli("status", "--config", str(agent.config_path), "--json",
                                "--remote", check=True).stdout)["remote"]
    assert [(c["relative_path"], c["server_sha256"], c["incoming_sha256"])
            for c in remote["open_conflicts"]] == [("IMG_0001.jpg", old, new)], remote
    admin = make_agent(tmp_path / "admin", pki, "admin", server)
    run_cli("conflicts", "keep-incoming", "--all", "--config", str(admin.config_path),
            check=True)
    assert library_versions_at(server, "laptop", "photos", "IMG_0001.jpg") == {
        "IMG_0001.jpg": new, "IMG_0001.v1.jpg": old}
    remote = json.loads(run_cli("status", "--config", str(agent.config_path), "--json",
                                "--remote", check=True).stdout)["remote"]
    assert remote["open_conflicts"] == []


def test_auto_policy_keeps_both_versions(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """With conflict_resolution auto, the same lost-index change becomes the head at once and
    the server's version is kept beside it as name.v1.jpg; nothing is parked."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    old, new = _change_after_losing_the_index(agent, "IMG_0002.jpg", 900)
    summary = agent.once()
    assert summary["files_uploaded"] == 1, summary
    assert library_versions_at(server, "laptop", "photos", "IMG_0002.jpg") == {
        "IMG_0002.jpg": new, "IMG_0002.v1.jpg": old}
    remote = json.loads(run_cli("status", "--config", str(agent.config_path), "--json",
                                "--remote", check=True).stdout)["remote"]
    assert remote["open_conflicts"] == []


def test_the_server_says_how_it_makes_photos_durable_and_per_file_still_syncs(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """The startup log names the method and its reason: one syncfs per group where the
    storage filesystem allows it (ext4, XFS, btrfs on Linux 5.8+), else fsync per file. With
    storage.sync_method: per-file the server always fsyncs per file, and photos still land
    whole."""
    choice = choose_sync(server.storage, SyncMethod.AUTO)
    method = "filesystem" if choice.filesystem_wide else "per-file"
    server.daemon.wait_for_log(f"event=store_sync method={method}")
    assert choice.reason in server.daemon.log()
    per_file = start_server(tmp_path / "per-file", pki,
                            extra={"storage": {"sync_method": "per-file"}})
    daemons.append(per_file.daemon)
    per_file.daemon.wait_for_log("event=store_sync method=per-file")
    assert "storage.sync_method is per-file" in per_file.daemon.log()
    agent = make_agent(tmp_path / "laptop", pki, "laptop", per_file)
    for i in range(4):
        make_jpeg(agent.watches["photos"] / f"IMG_{i:04d}.jpg", seed=700 + i, capture_time=SHOOT)
    assert agent.once()["files_uploaded"] == 4
    assert library_hashes(per_file, "laptop", "photos") == tree_hashes(agent.watches["photos"])
