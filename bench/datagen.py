"""Deterministic benchmark data: seeded photo sets, generated once and cached under bench/.data."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

log = logging.getLogger("bench")
DEFAULT_SEED = 20240601
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent / ".data"
_MANIFEST_NAME = "manifest.json"
_FORMAT_VERSION = 1
_MB = 1_000_000
_QUALITY = 92
_PREVIEW_QUALITY = 80
"""A camera's embedded full-size preview is a lighter JPEG than its "fine" JPEG."""

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
    SHOOT = "shoot"
    """A set kind only: a working photographer's day, planned by plan_shoot."""
    RAW_PREVIEW = "raw_preview"
    XMP = "xmp"
    HEIC = "heic"
    VIDEO = "video"


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
        # 20 RAWs and 12 TIFFs (4 and 3 until 2026-12): with so few files one slow fsync
        # moved a run's figure by a third (49.9-75.6 MB/s), too noisy to claim a ratio on.
        "raw": SetSpec("raw", FileKind.RAW, pick(20, 2), 25 * _MB, 25 * _MB),
        "tiff": SetSpec("tiff", FileKind.TIFF, pick(12, 1), 0, 0, 3000, 2000),
        # A working photographer's day (issue 16): count is the RAW files; see plan_shoot.
        "shoot": SetSpec("shoot", FileKind.SHOOT, pick(150, 6), 30 * _MB, 50 * _MB, 6048, 4024),
        # Fresh photos for the incremental (10) and latency (>= 20) figures: content never
        # seen by any set above, so no tool can deduplicate it away.
        "fresh": SetSpec("fresh", FileKind.JPEG, 34, 4 * _MB, 8 * _MB, 6000, 4000),
        "scale": SetSpec("scale", FileKind.TINY, pick(1_000_000, 20_000)),
    }


def plan_files(spec: SetSpec, seed: int, *, jpeg_bytes_per_pixel: float = 0.45) -> list[FileSpec]:
    """The files of a set, in a deterministic order; pure, so tests can check it cheaply.

    JPEG dimensions come from the wanted size and the generator's measured bytes per pixel:
    asking the generator for a target size costs it an extra calibration render per photo.
    """
    if spec.kind is FileKind.SHOOT:
        return plan_shoot(spec, seed, jpeg_bytes_per_pixel=jpeg_bytes_per_pixel)
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


# A day's shoots: (start hour, body index, GPS or None); the clips are phone HEICs and MP4s.
_DAY_SHOOTS = ((9, 0, (48.8584, 2.2945)), (13, 1, None), (17, 0, (48.8606, 2.3376)))
_CAMERA_JPEG_BYTES = (8 * _MB, 14 * _MB)
_XMP_BYTES = (5_000, 20_000)
_HEIC_BYTES = (2 * _MB, 8 * _MB)
_MP4_BYTES = (20 * _MB, 80 * _MB)
CLIPS_PER_150_RAWS = 20


def plan_shoot(spec: SetSpec, seed: int, *, jpeg_bytes_per_pixel: float = 0.45) -> list[FileSpec]:
    """A working photographer's day, in capture order (issue 16): spec.count RAW files
    (spec.min_bytes..max_bytes, each with a full-size JPEG preview inside), the camera's JPEG
    of every frame (RAW+JPEG mode, 8-14 MB), a Lightroom XMP sidecar of 5-20 KB per RAW, and
    20 per 150 RAWs (at least 2) phone HEICs and MP4 clips (2-8 MB and 20-80 MB), over three
    shoots of one day with two bodies."""
    rng = random.Random(f"{seed}:{spec.name}")
    clips = max(2, spec.count * CLIPS_PER_150_RAWS // 150)
    planned: list[FileSpec] = []

    def add(rel: str, kind: FileKind, size: int, when: datetime, body: int,
            gps: tuple[float, float] | None, dims: tuple[int, int] = (0, 0)) -> None:
        make, model = _BODIES[body][:2]
        planned.append(FileSpec(rel, kind, rng.getrandbits(31), size, dims[0], dims[1],
                                when, make, model, gps))

    for index in range(spec.count):
        shoot = index * len(_DAY_SHOOTS) // spec.count
        hour, body, gps = _DAY_SHOOTS[shoot]
        when = _FIRST_DAY + timedelta(hours=hour, seconds=index * 7)
        folder = f"{when:%Y-%m-%d}_shoot{shoot + 1}"
        _make, _model, stem_format, jpeg_ext, raw_ext = _BODIES[body]
        stem = f"{folder}/{stem_format.format(n=index + 1)}"
        add(stem + raw_ext, FileKind.RAW_PREVIEW, rng.randint(spec.min_bytes, spec.max_bytes),
            when, body, gps, (spec.width, spec.height))
        jpeg_size = rng.randint(*_CAMERA_JPEG_BYTES)
        add(stem + jpeg_ext, FileKind.JPEG, jpeg_size, when, body, gps,
            _dims_for(jpeg_size / jpeg_bytes_per_pixel, spec.width / spec.height))
        add(stem + ".xmp", FileKind.XMP, rng.randint(*_XMP_BYTES), when, body, None)
    for index in range(clips):
        shoot = index * len(_DAY_SHOOTS) // clips
        when = _FIRST_DAY + timedelta(hours=_DAY_SHOOTS[shoot][0], minutes=30 + index)
        folder = f"{when:%Y-%m-%d}_shoot{shoot + 1}"
        if index % 2:
            add(f"{folder}/CLIP_{index + 1:04d}.MP4", FileKind.VIDEO,
                rng.randint(*_MP4_BYTES), when, 0, None)
        else:
            add(f"{folder}/PHONE_{index + 1:04d}.HEIC", FileKind.HEIC,
                rng.randint(*_HEIC_BYTES), when, 1, None)
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
    from tests.support import photos, pixels

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
    elif spec.kind in (FileKind.RAW, FileKind.RAW_PREVIEW):
        sensor: dict[str, int] = {}
        preview = None
        if spec.kind is FileKind.RAW_PREVIEW:
            sensor = {"width": spec.width, "height": spec.height}
            preview = pixels.jpeg_bytes(seed=spec.seed, width=spec.width, height=spec.height,
                                        quality=_PREVIEW_QUALITY)
        photos.make_raw_like(
            path,
            seed=spec.seed,
            size_bytes=spec.size_bytes,
            capture_time=spec.capture_time,
            make=spec.make,
            model=spec.model,
            preview=preview,
            **sensor,
        )
    elif spec.kind is FileKind.XMP:
        photos.make_xmp(path, rating=spec.seed % 6, size_bytes=spec.size_bytes, seed=spec.seed)
    elif spec.kind is FileKind.HEIC:
        photos.make_heic_like(path, seed=spec.seed, size_bytes=spec.size_bytes)
    elif spec.kind is FileKind.VIDEO:
        photos.make_mp4_like(path, seed=spec.seed, size_bytes=spec.size_bytes)
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
    bpp = measure_jpeg_bytes_per_pixel() if spec.kind in _JPEG_SETS else 1.0
    planned = plan_files(spec, seed, jpeg_bytes_per_pixel=bpp)
    files = tuple(sorted(_generate(directory, planned, procs)))
    manifest = {"name": spec.name, "fingerprint": wanted, "seed": seed, "files": files}
    # The manifest goes last: a set interrupted half-way has none and is regenerated.
    (directory / _MANIFEST_NAME).write_text(json.dumps(manifest))
    return DataSet(spec.name, directory, files)


_JPEG_SETS = (FileKind.JPEG, FileKind.SHOOT)


def _generate(
    directory: Path, planned: Sequence[FileSpec], procs: int
) -> Iterator[tuple[str, int]]:
    """Makes every planned file, logging progress every tenth of the set (the full shoot set
    and the million-file scale set take minutes)."""
    jobs = [(directory, spec) for spec in planned]
    step = max(1, len(jobs) // 10)
    started = time.perf_counter()
    if procs <= 1 or len(jobs) < 4 or planned[0].kind is FileKind.TINY:
        # Tiny files cost less to write than to pickle to a worker.
        made: Iterator[tuple[str, int]] = map(_make_file_star, jobs)
        yield from _logging_progress(made, directory.name, len(jobs), step, started)
        return
    chunk = max(1, min(8, len(jobs) // (procs * 16)))
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        made = pool.imap_unordered(_make_file_star, jobs, chunksize=chunk)
        yield from _logging_progress(made, directory.name, len(jobs), step, started)


def _logging_progress(made: Iterator[tuple[str, int]], name: str, total: int, step: int,
                      started: float) -> Iterator[tuple[str, int]]:
    for done, item in enumerate(made, start=1):
        if done % step == 0 or done == total:
            log.info("data set %s: %d of %d files made (%.0f s)", name, done, total,
                     time.perf_counter() - started)
        yield item


def copy_into(dataset: DataSet, relative_paths: Sequence[str], destination: Path) -> list[Path]:
    """Copies some of a set's files into a folder (fresh inodes, fresh mtimes)."""
    written: list[Path] = []
    for rel in relative_paths:
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((dataset.root / rel).read_bytes())
        written.append(target)
    return written


def read_through(dataset: DataSet, block: int = 1 << 20) -> None:
    """Reads every file of the set once, so the page cache holds it when a measured step
    starts (a comparison must not hand one side a disk read the other side skips)."""
    buffer = bytearray(block)
    for rel, _size in dataset.files:
        with (dataset.root / rel).open("rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass
