"""An agent restart with nothing new to sync is mostly interpreter start and imports (the
5,000-file no-change re-sync target is 0.5 s), so modules only some runs need stay lazy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.photos import make_raw_like

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
    """In a fresh interpreter (earlier tests may have imported them already): watching loads
    watchdog, and reading a RAW's EXIF loads exifread."""
    raw = make_raw_like(tmp_path / "DSC_0001.NEF", seed=1, size_bytes=4096)
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from photonic.agent.fsevents import RootWatches\n"
        "from photonic.media.exif import read_exif_summary\n"
        f"assert read_exif_summary(Path({str(raw)!r})).camera_model\n"
        "assert RootWatches([], None, lambda _w, _e: None, lambda: None) is not None\n"
        "print(','.join(m for m in ('watchdog', 'exifread') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "watchdog,exifread"
