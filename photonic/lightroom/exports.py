"""The per-job export folders the bridge hands Lightroom, and the check that what the plugin
reports as a job's outputs are files Lightroom wrote inside that folder and nothing else."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from photonic.errors import InvalidInput


def make_export_dir(jobs_dir: Path, job_id: str, attempt: int) -> Path:
    """A fresh folder (0700) for one attempt's exports, its path resolved so that the paths
    Lightroom reports compare with it as they are."""
    jobs_dir.mkdir(parents=True, exist_ok=True)
    label = re.sub(r"[^A-Za-z0-9_-]", "_", job_id)[:40]
    return Path(tempfile.mkdtemp(prefix=f"lightroom-{label}-{attempt}-", dir=jobs_dir)).resolve()


def checked_outputs(export_dir: Path, outputs: Sequence[str]) -> list[Path]:
    """The outputs as resolved paths, each a regular file inside export_dir; InvalidInput
    naming the first that is not (outside, a symlink out, missing, not a file)."""
    return [_checked(export_dir, raw) for raw in outputs]


def _checked(export_dir: Path, raw: str) -> Path:
    path = Path(raw)
    if not path.is_absolute():
        raise InvalidInput(f"output {raw!r} is not an absolute path")
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise InvalidInput(f"output {raw!r} does not exist") from None
    if real == export_dir or not real.is_relative_to(export_dir):
        raise InvalidInput(f"output {raw!r} is not inside the job's export_dir {export_dir} "
                           "(a symlink out of it counts as outside): export into export_dir")
    if not stat.S_ISREG(os.lstat(real).st_mode):
        raise InvalidInput(f"output {raw!r} is not a regular file")
    return real
