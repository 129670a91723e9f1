"""Loads agent.yaml and server.yaml into frozen dataclasses, or one ConfigError naming all problems.

YAML enters photonic only here. Everything is validated before anything starts: a bad file
raises ConfigError listing each problem with the file, the dotted key and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from photonic import _configparse as cp
from photonic._configcatalog import CatalogConfig as CatalogConfig
from photonic._configcatalog import read_catalog
from photonic._configjobs import EXECUTOR_NAMES as EXECUTOR_NAMES
from photonic._configjobs import JobsConfig as JobsConfig
from photonic._configjobs import WorkConfig as WorkConfig
from photonic._configjobs import read_jobs, read_work
from photonic._configobjects import ObjectBackend as ObjectBackend
from photonic._configobjects import ObjectsConfig as ObjectsConfig
from photonic._configobjects import S3Settings as S3Settings
from photonic._configobjects import read_objects, refuse_local_only
from photonic._configreplication import BackupNodeConfig as BackupNodeConfig
from photonic._configreplication import ReplicationConfig as ReplicationConfig
from photonic._configreplication import ServerRole as ServerRole
from photonic._configreplication import check_archive_key, read_replication
from photonic._configscrub import RepairNode as RepairNode
from photonic._configscrub import ScrubConfig as ScrubConfig
from photonic._configscrub import read_scrub
from photonic.archive_key import DEFAULT_FILE_NAME as DEFAULT_ARCHIVE_KEY_FILE
from photonic.models import ConflictPolicy, Scope, SyncMethod, WatchMode, is_agent_id
from photonic.units import (
    DURATION_EXPECTED,
    RATE_EXPECTED,
    SIZE_EXPECTED,
    SizeIsNotARate,
    parse_duration,
    parse_rate,
    parse_size,
)

_AGENT_SECTIONS = ("agent", "network", "sync", "security", "work")
_SERVER_SECTIONS = ("server", "storage", "limits", "security", "jobs", "agents",
                    "default_scopes", "catalog")
_KIB = 1024
_E = TypeVar("_E", WatchMode, ConflictPolicy, Scope, SyncMethod)
_MIB = 1024 * 1024


@dataclass(frozen=True)
class SecurityConfig:
    """Where the mutual-TLS material lives; the revocation list is read by the server only."""

    cert_path: Path
    key_path: Path
    ca_path: Path
    revocation_list_path: Path | None = None
    archive_key_path: Path | None = None
    """The server's archive key (encrypted backup nodes); default: archive.key beside its
    certificate. None in an agent's config."""


@dataclass(frozen=True)
class WatchConfig:
    """One watched folder: `name` is its folder in the server's library, unique per agent."""

    path: Path
    name: str
    mode: WatchMode


@dataclass(frozen=True)
class AgentConfig:
    """Everything an agent daemon needs, validated; durations in seconds, sizes in bytes."""

    config_path: Path
    agent_id: str
    server_endpoints: tuple[str, ...]
    buffer_path: Path
    max_buffer_size_bytes: int
    watches: tuple[WatchConfig, ...]
    ignore_patterns: tuple[str, ...]
    settle_delay_s: float
    closed_settle_delay_s: float  # quiet period once the writer closed the file (inotify)
    incomplete_timeout_s: float
    rescan_interval_s: float
    metrics_port: int
    max_bandwidth_bytes_per_s: int  # 0 means unlimited
    compression: str  # "adaptive" | "always" | "never"
    compression_min_saving: float  # LZ4 kept only if it saves at least this fraction
    parallel_transfers: int
    chunk_size_bytes: int
    batch_size: int
    retry_attempts: int
    conflict_resolution: ConflictPolicy
    shoot_gap_s: float
    security: SecurityConfig
    work: WorkConfig = field(default_factory=WorkConfig)


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server daemon needs, validated; sizes in bytes."""

    config_path: Path
    bind_address: str
    storage_path: Path
    nfs_export: bool
    web_ui_port: int  # 0 disables the dashboard, /healthz and /metrics
    web_ui_bind: str
    deduplication: bool
    storage_compression: bool  # always False: at-rest compression is refused at load time
    backup_nodes: tuple[BackupNodeConfig, ...]  # archive nodes this primary replicates to
    min_free_bytes: int
    sync_method: SyncMethod
    max_agents: int
    max_concurrent_syncs: int
    max_transfer_size_bytes: int
    max_syncs_per_agent: int  # so that one certificate cannot take every sync slot
    max_stream_memory_bytes: int  # one stream's chunks, decoder buffers and waiting entries
    max_sync_memory_bytes: int  # the same for every sync stream together
    sync_idle_timeout_s: float  # a stream whose client does nothing this long is closed
    max_connection_age_s: float  # a connection is asked to reconnect after this long
    max_connection_age_grace_s: float  # and its streams are cut this much later
    security: SecurityConfig
    agent_scopes: Mapping[str, frozenset[Scope]]
    default_scopes: frozenset[Scope]
    catalog: CatalogConfig
    """catalog.url: the embedded <storage_path>/catalog.db by default, or PostgreSQL."""
    jobs: JobsConfig = field(default_factory=JobsConfig)
    scrub: ScrubConfig = field(default_factory=ScrubConfig)
    """storage.scrub_interval, storage.scrub_rate and storage.repair_from."""
    replication: ReplicationConfig = field(default_factory=ReplicationConfig)
    """server.role, storage.backup_nodes (again) and storage.min_copies."""
    webdav: bool = True
    """server.webdav: the read-only WebDAV export of the library under /dav/ on the web
    port. On by default: it is admin-only and read-only, so it shows the same credentials
    nothing the library listing and downloads of the web API do not already show them."""
    objects: ObjectsConfig = field(default_factory=ObjectsConfig)
    """storage.objects and storage.s3: where photos' bytes live."""


def _enum_choice(enum: type[_E]) -> cp.Field[_E]:
    return cp.choice({member.value: member for member in enum})


def _size(expected: str, low: int = 1, high: int = 2**63) -> cp.Field[int]:
    return cp.quantity(expected, parse_size, lambda n: low <= n <= high)


def _duration(low_s: float = 0.0) -> cp.Field[float]:
    return cp.quantity(f"{DURATION_EXPECTED}, at least {low_s:g}s", parse_duration,
                       lambda s: s >= low_s)


def _compression_mode(value: object) -> str:
    # YAML reads `compression: yes/on/true` as a bool; let that mean the sensible default.
    if isinstance(value, bool):
        return "adaptive" if value else "never"
    if isinstance(value, str) and value.lower() in {"adaptive", "always", "never"}:
        return value.lower()
    raise cp.Invalid


def _refused_compression(value: object) -> bool:
    if value is not False:
        raise cp.Invalid
    return False


def _is_safe_name(name: str) -> bool:
    """Watch names become folder names in the library, so they may not traverse or nest."""
    return (
        0 < len(name) <= 255
        and name not in {".", ".."}
        and not any(c in name for c in "/\\\0")
        and name.strip() == name
    )


_AGENT_ID = cp.text(
    "an agent id: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    is_agent_id,
)
_ENDPOINT = cp.host_port(min_port=1)
_WATCH_NAME = cp.text(
    "a folder name for the library: no '/', '\\\\', not '.' or '..', no surrounding spaces",
    _is_safe_name,
)
_NO_AT_REST_COMPRESSION = cp.Field(
    "false (at-rest compression is not implemented; the library must stay browsable)",
    _refused_compression,
)
_PATTERN = cp.text("a gitignore-style pattern (a non-empty string)")
_SCOPE = _enum_choice(Scope)


def _parse_rate_key(value: str | int | float) -> int:
    """parse_rate, with a bare size ("100MB") reported as such and its "/s" form suggested."""
    try:
        return parse_rate(value)
    except SizeIsNotARate as exc:
        raise cp.Invalid(f"{RATE_EXPECTED}, not a size: did you mean {exc.suggestion}?") from None


_RATE = cp.quantity(RATE_EXPECTED, _parse_rate_key, lambda n: n >= 0)
_COMPRESSION = cp.Field("one of: adaptive, always, never (or true / false)", _compression_mode)
_STREAM_MEMORY = _size(f"{SIZE_EXPECTED}, at least 32MiB (one stream's largest chunk in flight "
                       "plus room for a manifest)", low=32 * _MIB)


def load_agent_config(path: Path) -> AgentConfig:
    """The validated agent config in `path`; raises ConfigError listing every problem."""
    problems, root = _open(path, _AGENT_SECTIONS)
    sections = {name: root.section(name) for name in _AGENT_SECTIONS}
    watch_sections: list[cp.Section] = []
    config = _build_agent(Path(problems.file), sections, watch_sections)
    agent = sections["agent"]
    if agent.has("incomplete_timeout") and config.incomplete_timeout_s <= config.settle_delay_s:
        problems.add(agent.key("incomplete_timeout"),
                     f"a duration longer than agent.settle_delay ({config.settle_delay_s:g}s)",
                     cp.describe(agent.raw("incomplete_timeout")))
    cp.finish([root, *sections.values()])
    cp.finish(watch_sections)
    problems.raise_if_any()
    return config


def _build_agent(config_path: Path, sections: Mapping[str, cp.Section],
                 watch_sections: list[cp.Section]) -> AgentConfig:
    """Reads every agent key; wrong values are recorded and replaced by their defaults."""
    base = config_path.parent
    agent, network, sync = sections["agent"], sections["network"], sections["sync"]
    chunk_size = _size("a size from 64KiB to 4MiB, like 4MiB", 64 * _KIB, 4 * _MIB)
    return AgentConfig(
        config_path=config_path,
        agent_id=agent.require("id", _AGENT_ID, ""),
        server_endpoints=_read_endpoints(agent),
        buffer_path=agent.require("buffer_path", cp.path(base), Path()),
        max_buffer_size_bytes=agent.get("max_buffer_size", _size(SIZE_EXPECTED), 10 * 10**9),
        watches=_read_watches(agent, base, watch_sections),
        ignore_patterns=agent.get_list("ignore", _PATTERN, ()),
        settle_delay_s=agent.get("settle_delay", _duration(), 2.0),
        closed_settle_delay_s=agent.get("closed_settle_delay", _duration(), 0.25),
        incomplete_timeout_s=agent.get("incomplete_timeout", _duration(), 600.0),
        rescan_interval_s=agent.get("rescan_interval", _duration(1.0), 300.0),
        metrics_port=agent.get("metrics_port", cp.integer(0, 65535), 0),
        max_bandwidth_bytes_per_s=network.get("max_bandwidth", _RATE, 0),
        compression=network.get("compression", _COMPRESSION, "adaptive"),
        compression_min_saving=network.get("compression_min_saving", cp.number(0.0, 0.9), 0.05),
        parallel_transfers=network.get("parallel_transfers", cp.integer(1, 64), 4),
        chunk_size_bytes=network.get("chunk_size", chunk_size, 4 * _MIB),
        batch_size=sync.get("batch_size", cp.integer(1, 10000), 200),
        retry_attempts=sync.get("retry_attempts", cp.integer(1, 1000), 10),
        conflict_resolution=sync.get(
            "conflict_resolution", _enum_choice(ConflictPolicy), ConflictPolicy.AUTO
        ),
        shoot_gap_s=sync.get("shoot_gap", _duration(1.0), 7200.0),
        security=_read_security(sections["security"], base, server=False),
        work=read_work(sections["work"], base, watch_sections),
    )


def load_server_config(path: Path) -> ServerConfig:
    """The validated server config in `path`; raises ConfigError listing every problem."""
    problems, root = _open(path, _SERVER_SECTIONS)
    sections = {name: root.section(name) for name in _SERVER_SECTIONS if name != "default_scopes"}
    agent_scopes, entry_sections = _read_agent_scopes(sections["agents"])
    config = _build_server(Path(problems.file), root, sections, agent_scopes, entry_sections)
    limits = sections["limits"]
    if limits.has("max_sync_memory") and \
            config.max_sync_memory_bytes < config.max_stream_memory_bytes:
        problems.add(limits.key("max_sync_memory"), "a size at least limits.max_stream_memory "
                     f"({config.max_stream_memory_bytes} bytes)",
                     cp.describe(limits.raw("max_sync_memory")))
    _refuse_local_only(problems, sections, config)
    cp.finish([root, *sections.values()])
    cp.finish(entry_sections)
    problems.raise_if_any()
    return config


def _refuse_local_only(problems: cp.Problems, sections: Mapping[str, cp.Section],
                       config: ServerConfig) -> None:
    """Subsystems that read objects as local files refuse an s3:// store at load time."""
    server, storage = sections["server"], sections["storage"]
    refuse_local_only(problems, config.objects, [
        (storage.key("scrub_interval"), config.scrub.interval_s > 0),
        (storage.key("repair_from"), bool(config.scrub.repair_from)),
        (storage.key("backup_nodes"), bool(config.replication.backup_nodes)),
        (server.key("role"), config.replication.role is not ServerRole.PRIMARY),
        (server.key("nfs_export"), config.nfs_export),
    ])


def _build_server(config_path: Path, root: cp.Section, sections: Mapping[str, cp.Section],
                  agent_scopes: Mapping[str, frozenset[Scope]],
                  entry_sections: list[cp.Section]) -> ServerConfig:
    """Reads every server key; wrong values are recorded and replaced by their defaults."""
    server, storage, limits = sections["server"], sections["storage"], sections["limits"]
    replication = read_replication(server, storage, entry_sections)
    storage_path = server.require("storage_path", cp.path(config_path.parent), Path())
    security = _read_security(sections["security"], config_path.parent, server=True)
    objects = read_objects(storage)
    if security.archive_key_path is not None:
        check_archive_key(sections["security"], replication.backup_nodes,
                          security.archive_key_path)
    return ServerConfig(
        config_path=config_path,
        bind_address=server.get("bind_address", cp.host_port(min_port=0), "127.0.0.1:50051"),
        storage_path=storage_path,
        nfs_export=server.get("nfs_export", cp.boolean(), False),
        web_ui_port=server.get("web_ui_port", cp.integer(0, 65535), 8080),
        web_ui_bind=server.get("web_ui_bind", cp.host(), "127.0.0.1"),
        deduplication=storage.get("deduplication", cp.boolean(), True),
        storage_compression=storage.get("compression", _NO_AT_REST_COMPRESSION, False),
        backup_nodes=replication.backup_nodes,
        min_free_bytes=storage.get("min_free_space", _size(SIZE_EXPECTED, low=0), 10**9),
        sync_method=storage.get("sync_method", _enum_choice(SyncMethod), SyncMethod.AUTO),
        max_agents=limits.get("max_agents", cp.integer(1, 1_000_000), 100),
        max_concurrent_syncs=limits.get("max_concurrent_syncs", cp.integer(1, 10_000), 16),
        max_transfer_size_bytes=limits.get("max_transfer_size", _size(SIZE_EXPECTED), 100 * 10**9),
        max_syncs_per_agent=limits.get("max_syncs_per_agent", cp.integer(1, 10_000), 4),
        max_stream_memory_bytes=limits.get("max_stream_memory", _STREAM_MEMORY, 64 * _MIB),
        max_sync_memory_bytes=limits.get("max_sync_memory", _STREAM_MEMORY, 512 * _MIB),
        sync_idle_timeout_s=limits.get("sync_idle_timeout", _duration(1.0), 300.0),
        max_connection_age_s=limits.get("max_connection_age", _duration(10.0), 3600.0),
        max_connection_age_grace_s=limits.get("max_connection_age_grace", _duration(), 60.0),
        security=security,
        agent_scopes=agent_scopes,
        default_scopes=frozenset(root.get_list("default_scopes", _SCOPE, (Scope.SYNC,))),
        jobs=read_jobs(sections["jobs"]),
        scrub=read_scrub(storage, scrub_by_default=objects.backend is ObjectBackend.LOCAL),
        replication=replication,
        webdav=server.get("webdav", cp.boolean(), True),
        objects=objects,
        catalog=read_catalog(sections["catalog"], storage_path,
                             replicating=bool(replication.backup_nodes)),
    )


def _read_agent_scopes(
    agents: cp.Section,
) -> tuple[Mapping[str, frozenset[Scope]], list[cp.Section]]:
    """`agents:` maps each agent id to {scopes: [...]}; ids must be valid certificate names."""
    scopes: dict[str, frozenset[Scope]] = {}
    sections: list[cp.Section] = []
    for agent_id in agents.names():
        if not is_agent_id(agent_id):
            agents.problems.add(agents.key(agent_id), _AGENT_ID.expected, repr(agent_id))
        entry = agents.section(agent_id)
        sections.append(entry)
        if not entry.has("scopes"):
            entry.require("scopes", cp.Field(f"a list of scopes, each {_SCOPE.expected}", str), "")
        scopes[agent_id] = frozenset(entry.get_list("scopes", _SCOPE, ()))
    return MappingProxyType(scopes), sections


def _open(path: Path, sections: tuple[str, ...]) -> tuple[cp.Problems, cp.Section]:
    """The problem list and root section of `path`; unreadable or non-mapping files raise here.

    Duplicate keys are recorded but do not stop the reading, so they are reported with the rest.
    """
    problems = cp.Problems(path.absolute())
    data = cp.load_document(path.absolute(), problems)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else cp.describe(data)
        problems.add(cp.FILE_KEY, "a mapping with the sections " + ", ".join(sections), got)
        problems.raise_if_any()
    root = cp.Section(problems, data, "")
    root.known.update(sections)
    return problems, root


def _read_endpoints(agent: cp.Section) -> tuple[str, ...]:
    expected = 'a non-empty list of "host:port" addresses, like [127.0.0.1:50051]'
    if not agent.has("server_endpoints"):
        agent.require("server_endpoints", cp.Field(expected, str), "")
        return ()
    endpoints = agent.get_list("server_endpoints", _ENDPOINT, ())
    value = agent.raw("server_endpoints")
    if value is None or value == []:
        agent.problems.add(agent.key("server_endpoints"), expected, cp.describe(value))
    return endpoints


def _read_watches(agent: cp.Section, base: Path,
                  sections: list[cp.Section]) -> tuple[WatchConfig, ...]:
    """The watch list (each entry's section appended to `sections` for the unknown-key check).

    An entry is a mapping, or a bare path as shorthand for {path: ...}.
    """
    items = agent.items("watch")
    if not items and not any(p.key.startswith(agent.key("watch")) for p in agent.problems.items):
        agent.problems.add(agent.key("watch"), "a list of at least one folder, like "
                           "[{path: ~/Pictures, name: pictures, mode: reference}]",
                           cp.describe(agent.raw("watch")) if agent.has("watch") else cp.MISSING)
    watches: list[WatchConfig] = []
    for key, item in items:
        section = cp.Section(agent.problems, {"path": item} if isinstance(item, str) else item, key)
        sections.append(section)
        watch = _read_watch(section, base)
        for index, earlier in enumerate(watches):
            _check_distinct(section, watch, earlier, f"{agent.key('watch')}[{index}]")
        watches.append(watch)
    return tuple(watches)


def _read_watch(section: cp.Section, base: Path) -> WatchConfig:
    folder = section.require("path", cp.path(base), Path())
    name = section.get("name", _WATCH_NAME, folder.name)
    # Path() is only returned for a path already reported, so it needs no second problem.
    if not section.has("name") and folder != Path() and not _is_safe_name(name):
        section.problems.add(section.key("name"), "a name, since none can be derived from "
                             f"the path {str(folder)!r}", cp.MISSING)
    mode = section.get("mode", _enum_choice(WatchMode), WatchMode.REFERENCE)
    return WatchConfig(path=folder, name=name, mode=mode)


def _check_distinct(section: cp.Section, watch: WatchConfig, earlier: WatchConfig,
                    earlier_key: str) -> None:
    """Two watches may not share a library folder or see the same files twice."""
    if watch.name == earlier.name:
        section.problems.add(section.key("name"),
                             f"a name not already used by {earlier_key}", repr(watch.name))
    if watch.path == earlier.path or earlier.path in watch.path.parents \
            or watch.path in earlier.path.parents:
        section.problems.add(section.key("path"), "a folder that does not overlap "
                             f"{earlier_key}.path ({earlier.path})", str(watch.path))


def _read_security(security: cp.Section, base: Path, *, server: bool) -> SecurityConfig:
    path = cp.path(base)
    revocation: Path | None = None
    if server:
        value = security.get("revocation_list", path, Path())
        revocation = value if security.has("revocation_list") else None
    elif security.has("revocation_list"):
        security.raw("revocation_list")
        security.problems.add(security.key("revocation_list"), "no revocation_list in an "
                              "agent config (only the server checks revocations)")
    cert = security.require("cert_path", path, Path())
    return SecurityConfig(
        cert_path=cert,
        key_path=security.require("key_path", path, Path()),
        ca_path=security.require("ca_path", path, Path()),
        revocation_list_path=revocation,
        archive_key_path=security.get("archive_key_path", path,
                                      cert.parent / DEFAULT_ARCHIVE_KEY_FILE) if server else None,
    )
