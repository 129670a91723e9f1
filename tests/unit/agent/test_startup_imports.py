"""An agent restart with nothing new to sync is mostly interpreter start and imports (the
5,000-file no-change re-sync target is 0.5 s), so modules only some runs need stay lazy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_LAZY = ("watchdog", "PIL", "exifread")


def test_agent_modules_do_not_import_watchdog_pillow_or_exifread() -> None:
    probe = (
        "import sys\n"
        "import photonic.cli, photonic.agent.app\n"
        f"print(','.join(m for m in {_LAZY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "", f"imported at agent start: {out}"


def test_watching_and_hashing_still_load_them_when_needed(tmp_path: Path) -> None:
    from photonic.agent.fsevents import RootWatches
    from photonic.media.exif import read_exif_summary

    assert read_exif_summary(tmp_path / "missing.jpg") is not None
    assert RootWatches([], None, lambda _w, _e: None, lambda: None) is not None  # type: ignore[arg-type]
    assert "watchdog" in sys.modules and "exifread" in sys.modules
