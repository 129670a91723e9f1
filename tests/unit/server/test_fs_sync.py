"""Choosing one syncfs per group over an fsync per file: only on Linux 5.8+ (which reports
write errors to syncfs) and only on ext4, XFS or btrfs (FUSE, NFS and SMB may ignore syncfs
while honouring fsync); the reason is spelled out for the startup log either way."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from photonic.models import SyncMethod
from photonic.server.fs_sync import (
    TRUSTED_FILESYSTEMS,
    FilesystemSync,
    choose_sync,
    filesystem_type,
    kernel_version,
)

MOUNTINFO = "\n".join([
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard",
    "40 27 0:38 / /srv/photos rw,relatime - fuse.mergerfs pool rw,user_id=0",
    "41 27 0:39 / /srv/photos\\040archive rw - xfs /dev/sdb1 rw",
    "42 27 0:40 / /mnt/nas rw - nfs4 nas:/export rw,vers=4.2",
    "43 42 0:41 / /mnt/nas rw - btrfs /dev/sdc rw",  # stacked on the same point: it wins
    "garbage line that is not a mount",
])


@pytest.mark.parametrize(("release", "expected"), [
    ("6.18.44-fc-v657", (6, 18)), ("5.8.0-1041-aws", (5, 8)), ("5.15.0", (5, 15)),
    ("4.19.0-21-amd64", (4, 19)), ("5.10rc1", (5, 10)), ("weird", (0, 0)), ("", (0, 0)),
])
def test_kernel_versions_are_read_from_uname_strings(release: str,
                                                     expected: tuple[int, int]) -> None:
    assert kernel_version(release) == expected


@pytest.mark.parametrize(("path", "expected"), [
    ("/srv/photos/store", "fuse.mergerfs"),
    ("/srv/photos", "fuse.mergerfs"),
    ("/srv/photos archive/store", "xfs"),  # the mount point had a space, escaped as \040
    ("/srv/photosets", "ext4"),  # a longer name is not inside /srv/photos
    ("/mnt/nas/store", "btrfs"),
    ("/var/lib/photonic", "ext4"),
])
def test_the_store_path_is_matched_to_the_mount_holding_it(path: str, expected: str) -> None:
    assert filesystem_type(Path(path), MOUNTINFO) == expected


def _choice(method: SyncMethod = SyncMethod.AUTO, *, path: str = "/var/lib/photonic",
            platform: str = "linux", release: str = "6.1.0", has_syncfs: bool = True
            ) -> tuple[bool, str]:
    choice = choose_sync(Path(path), method, platform=platform, release=release,
                         mountinfo=MOUNTINFO, has_syncfs=has_syncfs)
    return choice.filesystem_wide, choice.reason


def test_auto_syncs_the_filesystem_on_a_trusted_local_one() -> None:
    assert _choice() == (True, "the store is on ext4, Linux 6.1.0")
    assert _choice(path="/srv/photos archive/x")[0]
    assert _choice(path="/mnt/nas/x")[0]


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"method": SyncMethod.PER_FILE}, "storage.sync_method is per-file"),
    ({"platform": "darwin"}, "syncfs is Linux-only (this is darwin)"),
    ({"release": "5.4.0-42"}, "Linux 5.4.0-42 is older than 5.8"),
    ({"has_syncfs": False}, "the C library has no syncfs"),
    ({"path": "/srv/photos/store"}, "the store is on fuse.mergerfs, not one of btrfs, ext4, xfs"),
])
def test_everything_else_fsyncs_per_file_and_says_why(kwargs: dict[str, object],
                                                      reason: str) -> None:
    wide, said = _choice(**kwargs)  # type: ignore[arg-type]
    assert not wide
    assert said.startswith(reason)


def test_this_machines_store_folder_is_judged_by_its_real_mount(tmp_path: Path) -> None:
    """No injected mount table: /proc/self/mountinfo and uname of the machine running the
    tests. The choice must follow the real filesystem's type."""
    fs_type = filesystem_type(tmp_path)
    assert fs_type, "the mount table was not readable"
    choice = choose_sync(tmp_path, SyncMethod.AUTO)
    new_enough = kernel_version(os.uname().release) >= (5, 8)
    assert choice.filesystem_wide == (fs_type in TRUSTED_FILESYSTEMS and new_enough), choice


def test_a_real_syncfs_succeeds_and_a_closed_one_refuses(tmp_path: Path) -> None:
    filesystem = FilesystemSync(tmp_path)
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8 bytes waiting in the page cache")
    filesystem.sync()
    filesystem.close()
    filesystem.close()  # twice is harmless (the server's stop may race a failed start)
    with pytest.raises(OSError, match="closed"):
        filesystem.sync()


def test_a_missing_store_root_fails_at_start_naming_it(tmp_path: Path) -> None:
    with pytest.raises(OSError) as raised:
        FilesystemSync(tmp_path / "not-there")
    assert raised.value.errno == errno.ENOENT
