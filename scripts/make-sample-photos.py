"""Writes a small set of sample photos (real EXIF, two shoots, a RAW+JPEG+XMP unit) for `make run`."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.photos import make_jpeg, make_raw_like, make_xmp  # noqa: E402


def main(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    start = datetime(2026, 6, 13, 17, 30)
    for i in range(6):
        make_jpeg(target / "wedding" / f"DSC_{i:04d}.jpg", seed=i,
                  capture_time=start + timedelta(minutes=3 * i))
    make_raw_like(target / "wedding" / "DSC_0100.NEF", seed=100, size_bytes=2 << 20,
                  capture_time=start + timedelta(minutes=40))
    make_jpeg(target / "wedding" / "DSC_0100.jpg", seed=100,
              capture_time=start + timedelta(minutes=40))
    make_xmp(target / "wedding" / "DSC_0100.xmp")
    for i in range(3):
        make_jpeg(target / "portraits" / f"IMG_{i:04d}.jpg", seed=200 + i, make="Canon",
                  model="EOS R6", capture_time=start + timedelta(days=2, minutes=i))
    print(f"sample photos written to {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
