"""The EXIF the agent records for a scanned JPEG, read from the hash pass's first block, is
what exifread and Pillow would record, and scanning JPEGs then never loads either of them."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from photonic.agent.hasher import CandidateHasher
from photonic.agent.listing import Candidate, ListedFile, candidate_of
from photonic.agent.statedb import FileRecord
from photonic.media.exif import read_exif_summary
from tests.support.photos import make_jpeg, make_png, make_raw_like

_SHOT = datetime(2024, 5, 11, 9, 30, 1, tzinfo=timezone(timedelta(hours=2)))


def _photos(folder: Path) -> list[Path]:
    return [
        make_jpeg(folder / "DSC_0001.jpg", seed=1, capture_time=_SHOT, gps=(48.85, 2.29),
                  extra_exif={0x0112: 6}, extra_exif_ifd={0xA434: "NIKKOR Z 50mm f/1.8 S"}),
        make_jpeg(folder / "IMG_0002.JPG", seed=2, width=300, height=200, make="Canon",
                  model="Canon EOS R5", capture_time=_SHOT.replace(tzinfo=None)),
        make_jpeg(folder / "big.jpg", seed=3, width=1600, height=1200, quality=100,
                  capture_time=_SHOT),  # larger than the 1 MiB first block
    ]


def _candidates(paths: list[Path]) -> list[Candidate]:
    return [candidate_of(str(p.parent), ListedFile(p.name, str(p), p.stat(), p.name))
            for p in paths]


@pytest.mark.parametrize("ingest", [False, True])
def test_recorded_exif_equals_the_exifread_and_pillow_summary(
    tmp_path: Path, ingest: bool
) -> None:
    """Hashing (in place or copying into the ingest buffer) records for each JPEG the summary
    the slow path gives; PNG and RAW files keep going through the slow path."""
    paths = _photos(tmp_path / "card")
    paths.append(make_png(tmp_path / "card" / "scan.png", seed=4))
    paths.append(make_raw_like(tmp_path / "card" / "DSC_0003.NEF", seed=5, size_bytes=50_000))
    hasher = CandidateHasher(tmp_path / "ingest")
    records = hasher.hash_group(_candidates(paths), ingest=ingest, incomplete=False)
    assert all(isinstance(r, FileRecord) for r in records)
    for path, record in zip(paths, records, strict=True):
        assert isinstance(record, FileRecord)
        assert record.exif == read_exif_summary(path), path.name
    assert records[0].exif.has_gps and records[0].exif.orientation == 6  # type: ignore[union-attr]
    assert records[2].exif.width == 1600  # type: ignore[union-attr]


_SCAN_PROBE = """
import json, sys
from dataclasses import asdict
from pathlib import Path
from photonic.agent.hasher import CandidateHasher
from photonic.agent.listing import ListedFile, candidate_of
paths = [Path(p) for p in sys.argv[1:]]
group = [candidate_of(str(p.parent), ListedFile(p.name, str(p), p.stat(), p.name))
         for p in paths]
records = CandidateHasher(paths[0].parent / "ingest").hash_group(group, False, False)
loaded = [m for m in ("PIL", "exifread") if m in sys.modules]
print(json.dumps({"loaded": loaded, "exif": [asdict(r.exif) for r in records]}))
"""


def test_scanning_jpegs_loads_neither_exifread_nor_pillow(tmp_path: Path) -> None:
    """An agent process that hashes camera JPEGs answers from memory: exifread and Pillow,
    slow to import and to run, stay unloaded (and the answers are still the slow path's)."""
    paths = _photos(tmp_path)
    probe = subprocess.run(
        [sys.executable, "-c", _SCAN_PROBE, *map(str, paths)],
        capture_output=True, text=True, check=True,
    )
    result = json.loads(probe.stdout)
    assert result["loaded"] == []
    assert result["exif"] == [asdict(read_exif_summary(p)) for p in paths]
