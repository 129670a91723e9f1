"""Deterministic benchmark data: seeded photo sets, generated once and cached under bench/.data."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

DEFAULT_SEED = 20240601
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent / ".data"
_MANIFEST_NAME = "manifest.json"
_FORMAT_VERSION = 1
_MB = 1_000_000
_QUALITY = 92

# Two bodies, as a photographer with a main and a backup camera would carry.
_BODIES = (
    ("NIKON CORPORATION", "NIKON Z 6", "DSC_{n:04d}", ".jpg", ".NEF"),
    ("Canon", "Canon EOS R5", "IMG_{n:04d}", ".JPG", ".CR3"),
)
# Shoots over several days: (day offset, start hour, body index, GPS position or None).
_SHOOTS = (
    (0, 9, 0, (48.8584, 2.2945)),
    (0, 15, 1, None),
    (1, 7, 0, None),
    (2, 18, 1, (45.7640, 4.8357)),
    (3, 11, 0, (43.2965, 5.3698)),
)
_FIRST_DAY = datetime(2024, 5, 11)


class FileKind(StrEnum):
    JPEG = "jpeg"
    RAW = "raw"
    TIFF = "tiff"
    TINY = "tiny"


@dataclass(frozen=True)
class SetSpec:
    """A set of files to generate: every file follows from (seed, name, index) alone."""

    name: str
    kind: FileKind
    count: int
    min_bytes: int = 0
    max_bytes: int = 0
    width: int = 0
    height: int = 0

    def directory_name(self, seed: int) -> str:
        return f"{self.name}-{self.count}-{seed}"


@dataclass(frozen=True)
class FileSpec:
    """Everything needed to make one file, so a worker process can make it independently."""

    relative_path: str
    kind: FileKind
    seed: int
    size_bytes: int
    width: int
    height: int
    capture_time: datetime
    make: str
    model: str
    gps: tuple[float, float] | None


@dataclass(frozen=True)
class DataSet:
    """A generated set on disk: its root folder and the relative paths and sizes it holds."""

    name: str
    root: Path
    files: tuple[tuple[str, int], ...]

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    @property
    def count(self) -> int:
        return len(self.files)


def standard_sets(*, quick: bool) -> dict[str, SetSpec]:
    """The sets the issue asks for; quick mode keeps the shapes and shrinks the counts."""

    def pick(full: int, small: int) -> int:
        return small if quick else full

    return {
        "large": SetSpec("large", FileKind.JPEG, pick(200, 20), 4 * _MB, 8 * _MB, 6000, 4000),
        "small": SetSpec("small", FileKind.JPEG, pick(5000, 500), 100_000, 200_000, 1000, 667),
        "raw": SetSpec("raw", FileKind.RAW, pick(4, 2), 25 * _MB, 25 * _MB),
        "tiff": SetSpec("tiff", FileKind.TIFF, pick(3, 1), 0, 0, 3000, 2000),
        # Fresh photos for the incremental (10) and latency (>= 20) figures: content never
        # seen by any set above, so no tool can deduplicate it away.
        "fresh": SetSpec("fresh", FileKind.JPEG, 34, 4 * _MB, 8 * _MB, 6000, 4000),
        "scale": SetSpec("scale", FileKind.TINY, pick(200_000, 20_000)),
    }


def plan_files(spec: SetSpec, seed: int, *, jpeg_bytes_per_pixel: float = 0.45) -> list[FileSpec]:
    """The files of a set, in a deterministic order; pure, so tests can check it cheaply.

    JPEG dimensions come from the wanted size and the generator's measured bytes per pixel:
    asking the generator for a target size costs it an extra calibration render per photo.
    """
    rng = random.Random(f"{seed}:{spec.name}")
    planned: list[FileSpec] = []
    per_shoot = max(1, -(-spec.count // len(_SHOOTS)))
    for index in range(spec.count):
        day, hour, body, gps = _SHOOTS[(index // per_shoot) % len(_SHOOTS)]
        make, model, stem, jpeg_ext, raw_ext = _BODIES[body]
        shot = index % per_shoot
        capture = _FIRST_DAY + timedelta(days=day, hours=hour, seconds=shot * rng.randint(2, 40))
        size = rng.randint(spec.min_bytes, spec.max_bytes)
        ext = {FileKind.JPEG: jpeg_ext, FileKind.RAW: raw_ext, FileKind.TIFF: ".tif"}.get(
            spec.kind, ".jpg"
        )
        folder = f"{capture:%Y-%m-%d}_shoot{(index // per_shoot) % len(_SHOOTS) + 1}"
        if spec.kind is FileKind.TINY:
            folder = f"d{index // 1000:04d}"
        name = stem.format(n=index + 1) + ext
        width, height = spec.width, spec.height
        if spec.kind is FileKind.JPEG:
            width, height = _dims_for(size / jpeg_bytes_per_pixel, spec.width / spec.height)
        planned.append(
            FileSpec(
                relative_path=f"{folder}/{name}",
                kind=spec.kind,
                seed=rng.getrandbits(31),
                size_bytes=size,
                width=width,
                height=height,
                capture_time=capture,
                make=make,
                model=model,
                gps=gps,
            )
        )
    return planned


def _dims_for(pixels: float, aspect: float) -> tuple[int, int]:
    height = max(16, round((pixels / aspect) ** 0.5))
    return max(16, round(height * aspect)), height


def measure_jpeg_bytes_per_pixel() -> float:
    """How many bytes a pixel of the generator's photo-like content costs at our quality."""
    from tests.support import pixels

    width, height = 1000, 667
    return len(pixels.jpeg_bytes(seed=1, width=width, height=height, quality=_QUALITY)) / (
        width * height
    )


def fingerprint(spec: SetSpec, seed: int) -> str:
    """Identifies what a cached set was generated from, so a changed spec regenerates it."""
    text = json.dumps([_FORMAT_VERSION, asdict(spec), seed], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tiny_photo_bytes(seed: int) -> bytes:
    """A few dozen bytes framed like a JPEG (SOI ... EOI) so completeness checks pass."""
    return b"\xff\xd8\xff\xfe" + f"photonic-bench-{seed}".encode() + b"\xff\xd9"


def make_file(root: Path, spec: FileSpec) -> tuple[str, int]:
    """Makes one file (in a worker process) and returns its relative path and size."""
    path = root / spec.relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    if spec.kind is FileKind.TINY:
        path.write_bytes(tiny_photo_bytes(spec.seed))
    else:
        _make_photo(path, spec)
    return spec.relative_path, path.stat().st_size


def _make_photo(path: Path, spec: FileSpec) -> None:
    # Imported here: the generator lives with the tests and is only needed when generating.
    from tests.support import photos

    if spec.kind is FileKind.JPEG:
        photos.make_jpeg(
            path,
            seed=spec.seed,
            width=spec.width,
            height=spec.height,
            quality=_QUALITY,
            capture_time=spec.capture_time,
            make=spec.make,
            model=spec.model,
            gps=spec.gps,
        )
    elif spec.kind is FileKind.RAW:
        photos.make_raw_like(
            path,
            seed=spec.seed,
            size_bytes=spec.size_bytes,
            capture_time=spec.capture_time,
            make=spec.make,
            model=spec.model,
        )
    else:
        photos.make_tiff(path, seed=spec.seed, width=spec.width, height=spec.height)


def _make_file_star(args: tuple[Path, FileSpec]) -> tuple[str, int]:
    return make_file(*args)


def load_cached(directory: Path, expected_fingerprint: str) -> DataSet | None:
    """The cached set when its manifest matches and every file is still there at its size."""
    manifest_path = directory / _MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("fingerprint") != expected_fingerprint:
        return None
    files = tuple((str(p), int(s)) for p, s in manifest["files"])
    for rel, size in files:
        try:
            if (directory / rel).stat().st_size != size:
                return None
        except OSError:
            return None
    return DataSet(manifest["name"], directory, files)


def ensure_set(
    spec: SetSpec, *, seed: int = DEFAULT_SEED, cache_dir: Path = DEFAULT_CACHE_DIR, procs: int = 2
) -> DataSet:
    """Returns the set from the cache, generating it first (in `procs` processes) if needed."""
    directory = cache_dir / spec.directory_name(seed)
    wanted = fingerprint(spec, seed)
    cached = load_cached(directory, wanted)
    if cached is not None:
        return cached
    directory.mkdir(parents=True, exist_ok=True)
    (directory / _MANIFEST_NAME).unlink(missing_ok=True)
    bpp = measure_jpeg_bytes_per_pixel() if spec.kind is FileKind.JPEG else 1.0
    planned = plan_files(spec, seed, jpeg_bytes_per_pixel=bpp)
    files = tuple(sorted(_generate(directory, planned, procs)))
    manifest = {"name": spec.name, "fingerprint": wanted, "seed": seed, "files": files}
    # The manifest goes last: a set interrupted half-way has none and is regenerated.
    (directory / _MANIFEST_NAME).write_text(json.dumps(manifest))
    return DataSet(spec.name, directory, files)


def _generate(
    directory: Path, planned: Sequence[FileSpec], procs: int
) -> Iterator[tuple[str, int]]:
    jobs = [(directory, spec) for spec in planned]
    if procs <= 1 or len(jobs) < 4 or planned[0].kind is FileKind.TINY:
        # Tiny files cost less to write than to pickle to a worker.
        yield from map(_make_file_star, jobs)
        return
    chunk = max(1, len(jobs) // (procs * 16))
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        yield from pool.imap_unordered(_make_file_star, jobs, chunksize=chunk)


def copy_into(dataset: DataSet, relative_paths: Sequence[str], destination: Path) -> list[Path]:
    """Copies some of a set's files into a folder (fresh inodes, fresh mtimes)."""
    written: list[Path] = []
    for rel in relative_paths:
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((dataset.root / rel).read_bytes())
        written.append(target)
    return written
