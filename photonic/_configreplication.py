"""The replication keys of server.yaml: `server.role`, `storage.backup_nodes` and
`storage.min_copies`. photonic.config re-exports the dataclasses; this module only keeps
config.py under its size."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from photonic import _configparse as cp
from photonic.archive_key import key_problem
from photonic.models import is_agent_id
from photonic.units import RATE_EXPECTED, SizeIsNotARate, parse_rate

_WINDOW_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
MAX_BACKUP_NODES = 16


class ServerRole(StrEnum):
    PRIMARY = "primary"  # takes agents' photos; replicates them to its backup nodes
    ARCHIVE = "archive"  # takes replication from primaries (the `replicate` scope) only


@dataclass(frozen=True)
class ScheduleWindow:
    """A daily window in local time, minutes after midnight; end < start wraps past midnight."""

    start_min: int
    end_min: int

    def contains(self, minute_of_day: int) -> bool:
        if self.start_min <= self.end_min:
            return self.start_min <= minute_of_day < self.end_min
        return minute_of_day >= self.start_min or minute_of_day < self.end_min


@dataclass(frozen=True)
class BackupNodeConfig:
    """One archive node a primary replicates every object and catalog row to."""

    name: str
    """Its id in the confirmations table, metrics and status: stable, unlike its address."""
    endpoint: str
    max_bandwidth_bytes_per_s: int = 0  # 0 means unlimited
    schedule: tuple[ScheduleWindow, ...] = ()
    """Windows when replication to it runs; empty means always."""
    encrypted: bool = False
    """Objects leave sealed with the archive key (photonic.sealing) under keyed names: the
    node holds neither the photos nor their hashes nor their library paths."""

    def open_at(self, minute_of_day: int) -> bool:
        return not self.schedule or any(w.contains(minute_of_day) for w in self.schedule)


@dataclass(frozen=True)
class ReplicationConfig:
    role: ServerRole = ServerRole.PRIMARY
    backup_nodes: tuple[BackupNodeConfig, ...] = ()
    min_copies: int = 1
    """Copies (the primary's own included) a photo needs to count as safe."""


def _window(value: object) -> ScheduleWindow:
    if not isinstance(value, str) or (m := _WINDOW_RE.match(value.strip())) is None:
        raise cp.Invalid
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h2 == 24 and m2 != 0:
        raise cp.Invalid
    return ScheduleWindow(h1 * 60 + m1, h2 * 60 + m2)


def _rate(value: str | int | float) -> int:
    try:
        return parse_rate(value)
    except SizeIsNotARate as exc:
        raise cp.Invalid(f"{RATE_EXPECTED}, not a size: did you mean {exc.suggestion}?") from None


_ROLE = cp.choice({r.value: r for r in ServerRole})
_NODE_NAME = cp.text("a node name: 1-64 letters, digits, '.', '_' or '-', starting with a "
                     "letter or digit", is_agent_id)
_WINDOW = cp.Field('a daily window "HH:MM-HH:MM" in local time, like "22:00-06:00"', _window)
_RATE = cp.quantity(RATE_EXPECTED, _rate, lambda n: n >= 0)


def read_replication(server: cp.Section, storage: cp.Section,
                     node_sections: list[cp.Section]) -> ReplicationConfig:
    """The replication keys; each backup node's section is appended to node_sections for the
    unknown-key check of the caller."""
    role = server.get("role", _ROLE, ServerRole.PRIMARY)
    nodes: list[BackupNodeConfig] = []
    items = storage.items("backup_nodes")
    if len(items) > MAX_BACKUP_NODES:
        storage.problems.add(storage.key("backup_nodes"),
                             f"at most {MAX_BACKUP_NODES} backup nodes", f"{len(items)}")
    for key, item in items:
        section = cp.Section(storage.problems, item, key)
        node_sections.append(section)
        node = _read_node(section)
        for earlier in nodes:
            if node.name == earlier.name:
                storage.problems.add(section.key("name"), "a name no other backup node has",
                                     repr(node.name))
        nodes.append(node)
    default_copies = 2 if nodes else 1
    min_copies = storage.get("min_copies", cp.integer(1, 1 + MAX_BACKUP_NODES), default_copies)
    if min_copies > 1 + len(nodes) and storage.has("min_copies"):
        storage.problems.add(storage.key("min_copies"),
                             f"at most 1 + the number of backup nodes ({1 + len(nodes)})",
                             str(min_copies))
    return ReplicationConfig(role, tuple(nodes), min_copies)


def _read_node(section: cp.Section) -> BackupNodeConfig:
    name = section.require("name", _NODE_NAME, "")
    endpoint = section.require("endpoint", cp.host_port(min_port=1), "")
    rate = section.get("max_bandwidth", _RATE, 0)
    schedule = section.get_list("schedule", _WINDOW, ())
    encrypted = section.get("encrypted", cp.boolean(), False)
    return BackupNodeConfig(name, endpoint, rate, schedule, encrypted)


def check_archive_key(security: cp.Section, nodes: tuple[BackupNodeConfig, ...],
                      key_path: Path) -> None:
    """An encrypted backup node needs a readable archive key: without it the server could
    neither seal what it sends nor read back what it sent, so it does not start."""
    encrypted = [n.name for n in nodes if n.encrypted]
    if not encrypted:
        return
    problem = key_problem(key_path)
    if problem:
        security.problems.add(
            security.key("archive_key_path"),
            f"the archive key of encrypted backup node {', '.join(encrypted)} "
            f"(make one with `photonic certs archive-key --dir {key_path.parent}` and back it "
            "up: without it the encrypted copies cannot be read)", f"{key_path}: {problem}")
