"""Whether a folder really takes a write now: create, write, fsync and remove a probe file.

Both daemons' health reports use it. Permission bits are not asked (root ignores them); the
file system is, so a read-only mount, a full disk, a folder replaced by a file or a failing
disk all show up as the OSError the next real write would have met."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

_serial = itertools.count()


def write_problem(folder: Path) -> str:
    """'' when a probe file could be written and synced in folder, else what went wrong
    (the error's text, without the folder's path)."""
    probe = folder / f".photonic-probe-{os.getpid()}-{next(_serial)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"probe")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return e.strerror or type(e).__name__
    return ""
