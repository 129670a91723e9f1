"""The scrub keys of server.yaml `storage:` (how often and how fast stored objects are
re-hashed) and `storage.repair_from` (other servers to fetch a damaged object back from).
photonic.config re-exports the dataclasses; this module only keeps config.py under its size.

Repair sources: a primary repairs from its `storage.backup_nodes`; `storage.repair_from` adds
servers that hold copies without being replicated to from here. On an archive node it names
the primaries that replicate to it (they hold the originals), so an archive repairs from them."""

from __future__ import annotations

from dataclasses import dataclass, field

from photonic import _configparse as cp
from photonic.models import is_agent_id
from photonic.units import (
    DURATION_EXPECTED,
    RATE_EXPECTED,
    SizeIsNotARate,
    parse_duration,
    parse_rate,
)

DEFAULT_SCRUB_INTERVAL_S = 30 * 86400.0
DEFAULT_SCRUB_RATE_BYTES_PER_S = 50 * 10**6


@dataclass(frozen=True)
class RepairNode:
    """A server this one may fetch stored objects from (PhotonicArchive), dialed with this
    server's own certificate; it must give that certificate the `replicate` scope."""

    name: str
    """How logs, audit rows and `photonic restore --from` name it."""
    endpoint: str
    """host:port of its gRPC listener."""


@dataclass(frozen=True)
class ScrubConfig:
    """The background scrub (server.yaml `storage:`)."""

    interval_s: float = DEFAULT_SCRUB_INTERVAL_S
    """Every stored object is re-hashed once per interval (`storage.scrub_interval`); a pass
    that ends early waits for the next interval to begin. 0 turns the scrub off."""
    rate_bytes_per_s: int = DEFAULT_SCRUB_RATE_BYTES_PER_S
    """The most a pass reads per second (`storage.scrub_rate`), so sync keeps the disk."""
    repair_from: tuple[RepairNode, ...] = field(default_factory=tuple)
    """Servers to repair from besides the backup nodes (`storage.repair_from`)."""


_NAME = cp.text("a node name: 1-64 letters, digits, '.', '_' or '-'", is_agent_id)
_ENDPOINT = cp.host_port(min_port=1)


def _rate(value: str | int | float) -> int:
    try:
        return parse_rate(value)
    except SizeIsNotARate as exc:
        raise cp.Invalid(f"{RATE_EXPECTED}, not a size: did you mean {exc.suggestion}?") from None


_SCRUB_RATE = cp.quantity(f"{RATE_EXPECTED} (0: no limit)", _rate, lambda n: n >= 0)
_SCRUB_INTERVAL = cp.quantity(f"{DURATION_EXPECTED}, at least 1s (or 0: no scrub)",
                              parse_duration, lambda s: s == 0 or s >= 1)


def read_scrub(storage: cp.Section, *, scrub_by_default: bool = True) -> ScrubConfig:
    """Reads scrub_interval, scrub_rate and repair_from; every problem is recorded.
    scrub_by_default=False (an s3:// object store, which the scrub cannot read yet) makes
    an absent scrub_interval 0."""
    return ScrubConfig(
        interval_s=storage.get("scrub_interval", _SCRUB_INTERVAL,
                               DEFAULT_SCRUB_INTERVAL_S if scrub_by_default else 0.0),
        rate_bytes_per_s=storage.get("scrub_rate", _SCRUB_RATE, DEFAULT_SCRUB_RATE_BYTES_PER_S),
        repair_from=_read_nodes(storage),
    )


def _read_nodes(storage: cp.Section) -> tuple[RepairNode, ...]:
    nodes: list[RepairNode] = []
    sections: list[cp.Section] = []
    for key, item in storage.items("repair_from"):
        entry = cp.Section(storage.problems, item, key)
        sections.append(entry)
        node = RepairNode(entry.require("name", _NAME, ""),
                          entry.require("endpoint", _ENDPOINT, ""))
        if node.name and any(n.name == node.name for n in nodes):
            storage.problems.add(entry.key("name"), "a name not already used in "
                                 f"{storage.key('repair_from')}", repr(node.name))
        nodes.append(node)
    cp.finish(sections)
    return tuple(n for n in nodes if n.name and n.endpoint)
