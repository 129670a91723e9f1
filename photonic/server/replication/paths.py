"""How a primary's library paths are named on an archive node, and back.

An archive node files everything a primary sends under the primary's certificate id, as it
files an agent's photos under the agent's id. The primary's `<agent>/<watch>/<rel>` travels as
watch name `<agent>` and relative path `<watch>/<rel>`: agent ids are valid watch names (no
'/'), and a watch name never holds '/', so the first component of the relative path is the
watch and the mapping is reversible. The archive's library reads
`library/<primary>/<agent>/<watch>/<rel>`, the primary's own tree one level down, which is
what promoting the archive to a primary needs (from_node gives back the primary's names)."""

from __future__ import annotations

from dataclasses import dataclass

from photonic.errors import InvalidInput


@dataclass(frozen=True)
class LibraryName:
    """A path in a primary's catalog: (agent, watch, path within the watch)."""

    agent_id: str
    watch_name: str
    rel_path: str


def to_node(name: LibraryName) -> tuple[str, str]:
    """(watch_name, relative_path) the archive node is offered for name."""
    return name.agent_id, f"{name.watch_name}/{name.rel_path}"


def from_node(watch_name: str, relative_path: str) -> LibraryName:
    """The primary's name of what the archive node holds at (watch_name, relative_path)."""
    watch, sep, rel = relative_path.partition("/")
    if not sep or not watch or not rel:
        raise InvalidInput(f"{relative_path!r} is not <watch>/<path>: not a replicated path")
    return LibraryName(watch_name, watch, rel)
