"""The jobs sections of the config files: server.yaml `jobs:` (leases, timeouts, ZIP limits)
and agent.yaml `work:` (whether and how this agent runs jobs). photonic.config re-exports the
dataclasses; this module only keeps config.py under its size."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from photonic import _configparse as cp
from photonic.units import DURATION_EXPECTED, SIZE_EXPECTED, parse_duration, parse_size

_GIB = 1024**3
EXECUTOR_NAMES = ("bgremove", "facecrop", "lightroom")
"""Executors the agent knows; `work.executors` and the option subsections name only these."""
_TAG_RE = re.compile(r"^[A-Za-z0-9_.-]+(=[^\s=]+)?$")


@dataclass(frozen=True)
class JobsConfig:
    """How the server leases, times and bounds processing jobs (server.yaml `jobs:`)."""

    heartbeat_s: float = 5.0
    """How often a worker beats on its Work stream (sent to it as StreamTerms)."""
    lease_s: float = 15.0
    """A lease not renewed for this long expires and its job returns to PENDING; longer than
    heartbeat_s so that one late beat does not lose a job."""
    max_attempts: int = 3
    """Attempts per job before a retryable failure or an expired lease fails it for good."""
    timeout_floor_s: float = 60.0
    """No job is given less time than this, however small its input."""
    timeout_ceiling_s: float = 3600.0
    """No job is given more time than this, however large its input."""
    timeout_p95_factor: float = 3.0
    """Once a kind has recorded durations, its timeout is at least this times their p95."""
    timeout_per_megabyte_s: float = 2.0
    """Time added per megabyte of input, so large files are not timed out as stuck."""
    timeout_per_megapixel_s: float = 1.0
    """Time added per megapixel of input, where the input's dimensions are known."""
    max_zip_bytes: int = 2 * _GIB
    """Largest ZIP accepted by SubmitZip (its compressed size)."""
    max_zip_entries: int = 5000
    """Most entries a ZIP may list; checked before any entry is read."""
    max_zip_uncompressed_bytes: int = 8 * _GIB
    """Most bytes a ZIP's entries may declare in total once uncompressed."""
    max_zip_ratio: float = 200.0
    """An entry whose uncompressed/compressed ratio exceeds this is a ZIP bomb: refused."""
    max_batch_children: int = 100_000
    """Most child jobs one batch (a folder, a shoot, a ZIP) may create."""
    web_upload_max_bytes: int = 2 * _GIB
    """Most bytes one upload to the web processing page (POST /api/v1/uploads) may carry, all
    its files together; each ZIP in it is also held to max_zip_bytes."""
    web_upload_max_files: int = 1000
    """Most files (photos and ZIPs) one web upload may carry."""
    cancel_grace_s: float = 10.0
    """After a CancelOrder, how long a worker has to report Cancelled before the server
    counts the job cancelled anyway."""
    queue_url: str = ""
    """Where the job queue lives: empty (the default) is the SQLite file jobs.db beside the
    catalog; `sqlite:///absolute/path/jobs.db` names another file; `postgresql://...` is a
    PostgreSQL database that several servers share (needs the `postgres` extra)."""


def _default_models_dir() -> Path:
    """$PHOTONIC_MODELS_DIR, else $XDG_DATA_HOME/photonic/models (~/.local/share/...): the
    folder `photonic models fetch` fills by default."""
    env = os.environ.get("PHOTONIC_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "photonic" / "models"


@dataclass(frozen=True)
class WorkConfig:
    """Whether and how this agent runs processing jobs (agent.yaml `work:`)."""

    enabled: bool = False
    """Open a Work stream on every server endpoint and take jobs; off: sync only."""
    executors: tuple[str, ...] | None = None
    """Executors to offer; None offers every one that loads on this machine."""
    max_concurrent: int = 1
    """Jobs run at once, across all servers together."""
    models_dir: Path = field(default_factory=_default_models_dir)
    """Where model files live: $PHOTONIC_MODELS_DIR, else ~/.local/share/photonic/models
    ($XDG_DATA_HOME honoured), as `photonic models fetch` writes them."""
    tags: tuple[str, ...] = ()
    """Extra capability tags (`gpu`, `os=macos`) on top of the executors' names and the OS."""
    memory_limit_bytes: int | None = None
    """Address-space cap of each executor's child process; None: no cap."""
    grace_s: float = 10.0
    """On SIGTERM, how long running jobs may finish before they are handed back."""
    options: Mapping[str, Mapping[str, object]] = field(
        default_factory=lambda: MappingProxyType({}))
    """Per-executor options (`work.bgremove.threshold`), JSON values only; a `model` path is
    resolved against the config file's folder (kept as text) and must exist when the work is
    enabled."""


def _size(low: int = 1) -> cp.Field[int]:
    return cp.quantity(SIZE_EXPECTED, parse_size, lambda n: low <= n <= 2**63)


def _duration(low_s: float = 0.0) -> cp.Field[float]:
    return cp.quantity(f"{DURATION_EXPECTED}, at least {low_s:g}s", parse_duration,
                       lambda s: s >= low_s)


def read_jobs(jobs: cp.Section) -> JobsConfig:
    """server.yaml `jobs:`; wrong values are recorded and replaced by their defaults."""
    d = JobsConfig()
    config = JobsConfig(
        heartbeat_s=jobs.get("heartbeat", _duration(0.1), d.heartbeat_s),
        lease_s=jobs.get("lease", _duration(0.1), d.lease_s),
        max_attempts=jobs.get("max_attempts", cp.integer(1, 100), d.max_attempts),
        timeout_floor_s=jobs.get("timeout_floor", _duration(1.0), d.timeout_floor_s),
        timeout_ceiling_s=jobs.get("timeout_ceiling", _duration(1.0), d.timeout_ceiling_s),
        timeout_p95_factor=jobs.get("timeout_p95_factor", cp.number(1.0, 1000.0),
                                    d.timeout_p95_factor),
        timeout_per_megabyte_s=jobs.get("timeout_per_megabyte", _duration(),
                                        d.timeout_per_megabyte_s),
        timeout_per_megapixel_s=jobs.get("timeout_per_megapixel", _duration(),
                                         d.timeout_per_megapixel_s),
        max_zip_bytes=jobs.get("max_zip_size", _size(), d.max_zip_bytes),
        max_zip_entries=jobs.get("max_zip_entries", cp.integer(1, 10_000_000),
                                 d.max_zip_entries),
        max_zip_uncompressed_bytes=jobs.get("max_zip_uncompressed", _size(),
                                            d.max_zip_uncompressed_bytes),
        max_zip_ratio=jobs.get("max_zip_ratio", cp.number(1.0, 1e9), d.max_zip_ratio),
        max_batch_children=jobs.get("max_batch_children", cp.integer(1, 100_000_000),
                                    d.max_batch_children),
        cancel_grace_s=jobs.get("cancel_grace", _duration(), d.cancel_grace_s),
        web_upload_max_bytes=jobs.get("web_upload_max", _size(), d.web_upload_max_bytes),
        web_upload_max_files=jobs.get("web_upload_max_files", cp.integer(1, 1_000_000),
                                      d.web_upload_max_files),
        queue_url=jobs.get("queue_url", _QUEUE_URL, d.queue_url),
    )
    _check_queue_driver(jobs, config)
    _check_jobs_order(jobs, config)
    return config


def _check_queue_driver(jobs: cp.Section, config: JobsConfig) -> None:
    """A PostgreSQL queue needs psycopg; said at start, not at the first job."""
    if queue_backend(config.queue_url) == "postgresql" and not importlib.util.find_spec(
            "psycopg"):
        jobs.problems.add(jobs.key("queue_url"), "psycopg installed for a postgresql:// queue "
                          "(pip install 'photonic[postgres]')", "psycopg is not installed")


def _check_jobs_order(jobs: cp.Section, config: JobsConfig) -> None:
    """A lease must outlive a beat, and the timeout range must not be empty."""
    if config.lease_s <= config.heartbeat_s:
        key = "lease" if jobs.has("lease") else "heartbeat"
        jobs.problems.add(jobs.key(key), f"jobs.lease ({config.lease_s:g}s) longer than "
                          f"jobs.heartbeat ({config.heartbeat_s:g}s)",
                          cp.describe(jobs.raw(key)))
    if config.timeout_ceiling_s < config.timeout_floor_s:
        key = "timeout_ceiling" if jobs.has("timeout_ceiling") else "timeout_floor"
        jobs.problems.add(jobs.key(key), f"jobs.timeout_ceiling ({config.timeout_ceiling_s:g}s)"
                          f" at least jobs.timeout_floor ({config.timeout_floor_s:g}s)",
                          cp.describe(jobs.raw(key)))


def queue_backend(url: str) -> str:
    """`sqlite` or `postgresql` for a valid jobs.queue_url (empty is SQLite), else ``."""
    if url == "":
        return "sqlite"
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///") and "\0" not in url:
        return "sqlite"
    scheme, sep, rest = url.partition("://")
    return "postgresql" if sep and scheme in ("postgresql", "postgres") and rest else ""


def is_queue_url(url: str) -> bool:
    return bool(queue_backend(url))


_QUEUE_URL = cp.text("a job queue URL: sqlite:///absolute/path/jobs.db or "
                     "postgresql://user@host:port/database", is_queue_url)


def _is_tag(tag: str) -> bool:
    return bool(_TAG_RE.match(tag))


_EXECUTOR = cp.choice({name: name for name in EXECUTOR_NAMES})
_TAG = cp.text('a capability tag: a name like "gpu", or name=value like "os=macos" '
               "(letters, digits, '_', '.', '-'; no spaces)", _is_tag)


def read_work(work: cp.Section, base: Path, option_sections: list[cp.Section]) -> WorkConfig:
    """agent.yaml `work:`; each executor's option subsection is appended to `option_sections`
    for the unknown-key check of its caller (their keys are free-form, so none is unknown)."""
    d = WorkConfig()
    enabled = work.get("enabled", cp.boolean(), False)
    memory = work.get("memory_limit", _size(16 * 1024 * 1024), 0)
    listed = work.raw("executors") is not None
    return WorkConfig(
        enabled=enabled,
        executors=work.get_list("executors", _EXECUTOR, ()) if listed else None,
        max_concurrent=work.get("max_concurrent", cp.integer(1, 256), d.max_concurrent),
        models_dir=work.get("models_dir", cp.path(base), d.models_dir),
        tags=work.get_list("tags", _TAG, ()),
        memory_limit_bytes=memory or None,
        grace_s=work.get("grace", _duration(), d.grace_s),
        options=_read_options(work, base, enabled, option_sections),
    )


def _read_options(work: cp.Section, base: Path, enabled: bool,
                  option_sections: list[cp.Section]) -> Mapping[str, Mapping[str, object]]:
    """The subsections named after executors; any other unknown key is left to `finish`,
    which suggests the closest executor or key name."""
    options: dict[str, Mapping[str, object]] = {}
    for name in EXECUTOR_NAMES:
        if not work.has(name):
            work.known.add(name)
            continue
        section = work.section(name)
        option_sections.append(section)
        if name == "lightroom":
            options[name] = _lightroom_options(section)
            continue
        values: dict[str, object] = {}
        for key in section.names():
            value = section.raw(key)
            if key == "model":
                # Text, not a Path: options travel to the executor's child process as JSON.
                value = str(_read_model(section, base, enabled))
            elif not _is_scalar_or_list(value):
                section.problems.add(section.key(key), "a number, text, true/false or a list "
                                     "of those", cp.describe(value))
                continue
            values[key] = value
        options[name] = MappingProxyType(values)
    return MappingProxyType(options)


LIGHTROOM_PORT = 7777
"""Where the bridge listens on 127.0.0.1 unless `work.lightroom.port` says otherwise."""


def _lightroom_options(section: cp.Section) -> Mapping[str, object]:
    """`work.lightroom`: the bridge's loopback port and how long a silent plugin is kept."""
    return MappingProxyType({
        "port": section.get("port", cp.integer(1, 65535), LIGHTROOM_PORT),
        "client_timeout_s": section.get("client_timeout", _duration(1.0), 300.0),
    })


def _read_model(section: cp.Section, base: Path, enabled: bool) -> Path:
    """A model file path; with the work enabled it must exist, so a typo stops the start."""
    path = section.get("model", cp.path(base), Path())
    if enabled and path != Path() and not path.is_file():
        section.problems.add(section.key("model"), "an existing model file (work.enabled is "
                             "true)", f"{str(path)!r}, which does not exist")
    return path


def _is_scalar_or_list(value: object) -> bool:
    if isinstance(value, list):
        return all(isinstance(v, str | int | float | bool) for v in value)
    return isinstance(value, str | int | float | bool)
