"""Plans upload batches: photos grouped into units and shoots, most recent shoot first."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Generic, Protocol, TypeVar

from photonic.media.images import is_sidecar
from photonic.models import ExifSummary

# EWMA weight of the newest throughput sample: reacts within a few batches, ignores one blip.
_THROUGHPUT_ALPHA = 0.3


class BatchableFile(Protocol):
    """What the batcher needs to know about a queued file (statedb.PendingFile fits)."""

    @property
    def id(self) -> int: ...
    @property
    def watch_name(self) -> str: ...
    @property
    def relative_path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...
    @property
    def exif(self) -> ExifSummary: ...
    @property
    def enqueued_unix_ms(self) -> int: ...


F = TypeVar("F", bound=BatchableFile)


@dataclass(frozen=True)
class Unit(Generic[F]):
    """Files that travel together: a photo, its RAW/JPEG twin and their XMP sidecars."""

    files: tuple[F, ...]
    capture_unix_ms: int
    camera: str
    bytes: int


@dataclass(frozen=True)
class Shoot(Generic[F]):
    """Units taken by one camera without a long pause, in chronological order."""

    units: tuple[Unit[F], ...]
    start_unix_ms: int
    end_unix_ms: int
    camera: str

    @property
    def file_count(self) -> int:
        return sum(len(u.files) for u in self.units)


@dataclass(frozen=True)
class Batch(Generic[F]):
    """Files sent in one SyncBatch; camera is "" when unknown and comma-joined when merged."""

    files: tuple[F, ...]
    shoot_start_unix_ms: int
    shoot_end_unix_ms: int
    camera: str
    bytes: int


def capture_unix_ms(f: BatchableFile) -> int:
    """EXIF capture time, or the file's mtime when EXIF has none."""
    if f.exif.capture_time_unix_ms > 0:
        return f.exif.capture_time_unix_ms
    return f.mtime_ns // 1_000_000


def _is_sidecar(relative_path: str) -> bool:
    return is_sidecar(Path(relative_path))


def _dir_key(f: BatchableFile) -> tuple[str, str]:
    return f.watch_name, str(PurePosixPath(f.relative_path).parent)


def _sidecar_stem(name: str, photo_names: dict[str, str]) -> str:
    """Maps `a.NEF.xmp` to the photo `a.NEF`'s stem and `a.xmp` to `a`, all lowercased."""
    remainder = PurePosixPath(name).stem.lower()
    if remainder in photo_names:
        return photo_names[remainder]
    stripped = PurePosixPath(remainder).stem
    if remainder not in photo_names.values() and stripped in photo_names.values():
        return stripped
    return remainder


def _unit_of(files: list[F]) -> Unit[F]:
    photos = [f for f in files if not _is_sidecar(f.relative_path)] or files
    with_exif = [f for f in photos if f.exif.capture_time_unix_ms > 0]
    capture = min(capture_unix_ms(f) for f in (with_exif or photos))
    camera = next((f.exif.camera for f in photos if f.exif.camera), "")
    ordered = sorted(files, key=lambda f: (_is_sidecar(f.relative_path), f.relative_path))
    return Unit(tuple(ordered), capture, camera, sum(f.size for f in files))


def group_units(files: Iterable[F]) -> list[Unit[F]]:
    """Groups files sharing watch, directory and case-insensitive stem; chronological order."""
    by_dir: dict[tuple[str, str], list[F]] = {}
    for f in files:
        by_dir.setdefault(_dir_key(f), []).append(f)
    units: list[Unit[F]] = []
    for dir_files in by_dir.values():
        photo_names = {
            PurePosixPath(f.relative_path).name.lower(): PurePosixPath(f.relative_path).stem.lower()
            for f in dir_files
            if not _is_sidecar(f.relative_path)
        }
        by_stem: dict[str, list[F]] = {}
        for f in dir_files:
            name = PurePosixPath(f.relative_path).name
            stem = (
                _sidecar_stem(name, photo_names)
                if _is_sidecar(name)
                else PurePosixPath(name).stem.lower()
            )
            by_stem.setdefault(stem, []).append(f)
        units.extend(_unit_of(group) for group in by_stem.values())
    units.sort(key=lambda u: (u.capture_unix_ms, u.files[0].watch_name, u.files[0].relative_path))
    return units


def group_shoots(units: Sequence[Unit[F]], *, shoot_gap_s: float) -> list[Shoot[F]]:
    """Splits chronological units into shoots at a gap longer than shoot_gap_s or a camera change.

    Units with an unknown camera (sidecar-only units, photos without EXIF) join the current shoot
    rather than breaking it.
    """
    gap_ms = shoot_gap_s * 1000.0
    shoots: list[Shoot[F]] = []
    current: list[Unit[F]] = []
    camera = ""
    for unit in sorted(units, key=lambda u: u.capture_unix_ms):
        if current:
            gap = unit.capture_unix_ms - current[-1].capture_unix_ms > gap_ms
            changed = bool(unit.camera and camera and unit.camera != camera)
            if gap or changed:
                shoots.append(_shoot_of(current, camera))
                current, camera = [], ""
        current.append(unit)
        camera = camera or unit.camera
    if current:
        shoots.append(_shoot_of(current, camera))
    return shoots


def _shoot_of(units: list[Unit[F]], camera: str) -> Shoot[F]:
    return Shoot(tuple(units), units[0].capture_unix_ms, units[-1].capture_unix_ms, camera)


def _fits(units: Sequence[Unit[F]], max_files: int, max_bytes: int) -> bool:
    files = sum(len(u.files) for u in units)
    return files <= max_files and sum(u.bytes for u in units) <= max_bytes


def _split_units(units: Sequence[Unit[F]], max_files: int, max_bytes: int) -> list[list[Unit[F]]]:
    """Greedy split at unit boundaries; a unit over the limits on its own travels alone."""
    parts: list[list[Unit[F]]] = []
    current: list[Unit[F]] = []
    files = size = 0
    for unit in units:
        fits = files + len(unit.files) <= max_files and size + unit.bytes <= max_bytes
        if current and not fits:
            parts.append(current)
            current, files, size = [], 0, 0
        current.append(unit)
        files += len(unit.files)
        size += unit.bytes
    if current:
        parts.append(current)
    return parts


def _batch_of(units: list[Unit[F]]) -> Batch[F]:
    cameras = sorted({u.camera for u in units if u.camera})
    return Batch(
        files=tuple(f for u in units for f in u.files),
        shoot_start_unix_ms=min(u.capture_unix_ms for u in units),
        shoot_end_unix_ms=max(u.capture_unix_ms for u in units),
        camera=", ".join(cameras),
        bytes=sum(u.bytes for u in units),
    )


def plan_batches(
    files: Sequence[F],
    *,
    shoot_gap_s: float,
    max_files: int,
    max_bytes: int,
    tiny_shoot_files: int = 5,
) -> list[Batch[F]]:
    """Batches files by shoot, most recent shoot first and chronological within a shoot.

    A batch holds one shoot (or a part of one, split at unit boundaries), except that
    consecutive tiny shoots (fewer than tiny_shoot_files files) share a batch within the limits.
    A unit is never split, so a unit larger than the limits forms a batch of its own.
    """
    if max_files < 1 or max_bytes < 1:
        raise ValueError("max_files and max_bytes must be positive")
    shoots = group_shoots(group_units(files), shoot_gap_s=shoot_gap_s)
    shoots.sort(key=lambda s: s.end_unix_ms, reverse=True)
    batches: list[Batch[F]] = []
    tiny: list[Unit[F]] = []
    for shoot in shoots:
        if shoot.file_count < tiny_shoot_files:
            if _fits([*tiny, *shoot.units], max_files, max_bytes):
                tiny.extend(shoot.units)
                continue
            if tiny:
                batches.append(_batch_of(tiny))
            tiny = []
            if _fits(shoot.units, max_files, max_bytes):
                tiny = list(shoot.units)
                continue
        if tiny:
            batches.append(_batch_of(tiny))
            tiny = []
        batches.extend(_batch_of(p) for p in _split_units(shoot.units, max_files, max_bytes))
    if tiny:
        batches.append(_batch_of(tiny))
    return batches


class AdaptiveBatchSize:
    """Keeps a batch near target_seconds of transfer at the measured bandwidth."""

    def __init__(
        self,
        *,
        initial_bytes: int = 64 << 20,
        min_bytes: int = 4 << 20,
        max_bytes: int = 2 << 30,
        target_seconds: float = 10.0,
    ) -> None:
        if not 0 < min_bytes <= max_bytes or target_seconds <= 0:
            raise ValueError("need 0 < min_bytes <= max_bytes and target_seconds > 0")
        self._min_bytes = min_bytes
        self._max_bytes = max_bytes
        self._target_seconds = target_seconds
        self._initial_bytes = initial_bytes
        self._throughput_bytes_per_s: float | None = None

    def observe(self, bytes_sent: int, seconds: float) -> None:
        """Feeds one finished transfer into the throughput average; nonsense samples are ignored."""
        if seconds <= 0 or bytes_sent < 0:
            return
        sample = bytes_sent / seconds
        previous = self._throughput_bytes_per_s
        if previous is None:
            self._throughput_bytes_per_s = sample
        else:
            self._throughput_bytes_per_s = previous + _THROUGHPUT_ALPHA * (sample - previous)

    @property
    def throughput_bytes_per_s(self) -> float | None:
        return self._throughput_bytes_per_s

    @property
    def max_bytes(self) -> int:
        if self._throughput_bytes_per_s is None:
            wanted = self._initial_bytes
        else:
            wanted = int(self._throughput_bytes_per_s * self._target_seconds)
        return max(self._min_bytes, min(self._max_bytes, wanted))
