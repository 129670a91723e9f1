"""Real size-limited filesystems for disk-full scenarios: a tmpfs, else a loop-mounted ext4
image; a ballast file takes space away and deleting it gives the space back."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BALLAST = ".chaos-ballast"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def _mount_tmpfs(path: Path, size_mib: int) -> str:
    proc = _run("mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(path))
    return "" if proc.returncode == 0 else f"tmpfs: {proc.stderr.strip()}"


def _mount_loop_ext4(path: Path, size_mib: int) -> str:
    image = path.with_name(path.name + ".ext4")
    with open(image, "wb") as f:
        f.truncate(size_mib << 20)
    steps = (("mkfs.ext4", "-q", "-F", "-m", "0", str(image)),
             ("mount", "-o", "loop", str(image), str(path)))
    for step in steps:
        if shutil.which(step[0]) is None:
            return f"ext4 loop: {step[0]} not installed"
        proc = _run(*step)
        if proc.returncode != 0:
            return f"ext4 loop: {' '.join(step[:2])}: {proc.stderr.strip()}"
    return ""


@contextmanager
def size_limited_fs(path: Path, size_mib: int) -> Iterator[Path]:
    """Mounts a filesystem of size_mib at path for the duration; skips the test (saying why)
    when this machine allows neither a tmpfs nor a loop mount."""
    path.mkdir(parents=True, exist_ok=True)
    problems = []
    for mount in (_mount_tmpfs, _mount_loop_ext4):
        problem = mount(path, size_mib)
        if not problem:
            break
        problems.append(problem)
    else:
        pytest.skip("no size-limited filesystem can be mounted here: " + "; ".join(problems))
    try:
        yield path
    finally:
        _run("umount", "-l", str(path))


def fill_leaving(path: Path, free_bytes: int) -> None:
    """Writes a ballast file so that about free_bytes stay free on path's filesystem."""
    usage = shutil.disk_usage(path)
    size = max(0, usage.free - free_bytes)
    with open(path / BALLAST, "wb") as f:
        f.truncate(0)
        block = b"\0" * (1 << 20)
        while size > 0:
            f.write(block[: min(size, len(block))])
            size -= len(block)
        f.flush()
        os.fsync(f.fileno())


def free_ballast(path: Path) -> None:
    """Gives the ballast's space back: the "user freed some disk" moment of a scenario."""
    (path / BALLAST).unlink(missing_ok=True)


class FailingDisk:
    """An ext4 filesystem (no journal, like many data disks) on a loop device whose backing
    file lives on a small tmpfs: while that tmpfs is full, the loop device fails the writes
    the kernel makes when it writes dirty pages back, exactly as a failing disk does. write()
    itself still succeeds (ext4 believes it has room); the error surfaces only in fsync and
    syncfs, which is the case a durable store must not miss."""

    def __init__(self, mount: Path, backing: Path) -> None:
        self.mount = mount
        self._backing = backing

    def break_writes(self) -> None:
        fill_leaving(self._backing, 0)

    def heal(self) -> None:
        free_ballast(self._backing)

    def remount(self) -> None:
        """Unmounts and mounts again: the page cache is dropped, so what is read afterwards
        is what reached the disk."""
        for step in (("umount", str(self.mount)),
                     ("mount", "-o", "loop", str(self._backing / "disk.ext4"), str(self.mount))):
            proc = _run(*step)
            assert proc.returncode == 0, f"{' '.join(step)}: {proc.stderr.strip()}"


@contextmanager
def failing_disk(path: Path, size_mib: int = 256, backing_mib: int = 64) -> Iterator[FailingDisk]:
    """Mounts a FailingDisk at path; skips the test (saying why) where loop mounts are
    refused (not root, no loop driver, no mkfs.ext4)."""
    backing = path.with_name(path.name + ".backing")
    backing.mkdir(parents=True, exist_ok=True)
    path.mkdir(parents=True, exist_ok=True)
    problem = _mount_tmpfs(backing, backing_mib)
    if problem:
        pytest.skip(f"a failing disk needs a tmpfs for its backing file: {problem}")
    image = backing / "disk.ext4"
    with open(image, "wb") as f:
        f.truncate(size_mib << 20)  # sparse: blocks are taken from the tmpfs as ext4 writes
    try:
        for step in (("mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", str(image)),
                     ("mount", "-o", "loop", str(image), str(path))):
            if shutil.which(step[0]) is None:
                pytest.skip(f"a failing disk needs {step[0]}, which is not installed")
            proc = _run(*step)
            if proc.returncode != 0:
                pytest.skip(f"a failing disk cannot be made here: {' '.join(step[:2])}: "
                            f"{proc.stderr.strip()}")
        try:
            yield FailingDisk(path, backing)
        finally:
            _run("umount", "-l", str(path))
    finally:
        _run("umount", "-l", str(backing))
