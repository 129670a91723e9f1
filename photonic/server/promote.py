"""Promoting an archive node to a primary: the primary's library, filed on the node under the
primary's certificate name (replication/paths.py), is given back the primary's own names.

An archive's catalog holds agent_id = <primary>, watch_name = <agent>, rel_path =
<watch>/<rel>, and its tree `library/<primary>/<agent>/<watch>/<rel>`. Promotion rewrites
each such path to (agent, watch, rel) and `library/<agent>/...`, keeping every location id,
version, content and confirmation, recounts what migration 009 derives from the paths (agent
totals, the folder column and the folder tree) and registers the agents, all in one
transaction. The folder renames cannot join that transaction, so the transaction also writes
them to promotion_renames; they are done after the commit, each one checked, made durable and
struck off, so a crash part-way is finished by running the command again. Run with the server
stopped: nothing else may write the catalog or the library meanwhile."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from photonic.errors import InvalidInput, PhotonicError
from photonic.media.hashing import fsync_directory
from photonic.server import faults
from photonic.server.catalog_browse import TOTALS_BY_AGENT_SQL, folder_of
from photonic.server.replication.paths import LibraryName, from_node
from photonic.server.replication.sealed import SEALED_WATCH
from photonic.sqlite_db import open_database, transaction

LIBRARY = "library"


def promoted_library_path(primary: str, library_path: str) -> str:
    """`library/<primary>/<agent>/...` as the primary recorded it: `library/<agent>/...`."""
    prefix = f"{LIBRARY}/{primary}/"
    if not library_path.startswith(prefix) or len(library_path) == len(prefix):
        raise InvalidInput(f"{library_path!r} is not under {prefix!r}: not replicated from "
                           f"{primary}")
    return f"{LIBRARY}/{library_path[len(prefix):]}"


def promoted_name(watch_name: str, rel_path: str) -> LibraryName:
    """The primary's (agent, watch, rel) of an archive path (watch_name = the agent)."""
    return from_node(watch_name, rel_path)


@dataclass(frozen=True)
class AgentPlan:
    """What promotion moves for one of the primary's agents."""

    agent_id: str
    paths: int
    versions: int
    head_bytes: int


@dataclass(frozen=True)
class Plan:
    primary: str
    agents: tuple[AgentPlan, ...]


@dataclass(frozen=True)
class Rename:
    """A library folder rename, relative to the storage root."""

    source: str
    target: str


class Promotion:
    """The catalog (opened directly: the server is stopped) and the store root it describes.

    The embedded SQLite catalog only, not the Catalog protocol: a promotion renames library
    folders on this node's own disk in step with its catalog rows (promotion_renames, written
    in the catalog's transaction), which only an archive node's own embedded installation
    has; a PostgreSQL catalog is refused before this is opened (promote_cli)."""

    def __init__(self, storage: Path, catalog_file: Path | None = None) -> None:
        self._root = storage
        self._conn = open_database(catalog_file or storage / "catalog.db",
                                   "photonic.server.migrations")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

    # reading ---------------------------------------------------------------------------------

    def pending_renames(self) -> list[Rename]:
        """Renames a committed promotion still owes (a crash cut it short)."""
        return [Rename(str(s), str(t)) for s, t in self._conn.execute(
            "SELECT source, target FROM promotion_renames ORDER BY source").fetchall()]

    def plan(self, primary: str) -> Plan:
        """What promoting `primary`'s replicated library would move; refuses (InvalidInput)
        what cannot be promoted: sealed copies, names already taken here, odd paths."""
        c = self._conn
        if c.execute("SELECT 1 FROM locations WHERE agent_id = ? AND watch_name = ? LIMIT 1",
                     (primary, SEALED_WATCH)).fetchone():
            raise InvalidInput(
                f"{primary}'s copies on this node are encrypted (watch {SEALED_WATCH!r}): a "
                "node that holds only ciphertext cannot be promoted. Restore them onto a new "
                "primary with the archive key instead: photonic restore --from <this node> "
                "--all, run on the new primary")
        rows = c.execute(
            "SELECT l.watch_name, COUNT(DISTINCT l.id), COUNT(v.version), "
            "COALESCE(SUM(CASE WHEN v.version = l.head_version THEN p.size END), 0) "
            "FROM locations l JOIN versions v ON v.location_id = l.id "
            "JOIN photos p ON p.sha256 = v.sha256 WHERE l.agent_id = ? "
            "GROUP BY l.watch_name ORDER BY l.watch_name", (primary,)).fetchall()
        agents = tuple(AgentPlan(str(a), int(n), int(v), int(b)) for a, n, v, b in rows)
        self._check(primary, agents)
        return Plan(primary, agents)

    def _check(self, primary: str, agents: tuple[AgentPlan, ...]) -> None:
        c = self._conn
        for agent in agents:
            if agent.agent_id == primary:
                raise InvalidInput(f"agent {agent.agent_id!r} has the primary's own name")
            if c.execute("SELECT 1 FROM locations WHERE agent_id = ? LIMIT 1",
                         (agent.agent_id,)).fetchone():
                raise InvalidInput(f"this server already holds photos of agent "
                                   f"{agent.agent_id!r} under its own name: not promoted")
            if os.path.lexists(self._root / LIBRARY / agent.agent_id):
                raise InvalidInput(f"{self._root / LIBRARY / agent.agent_id} exists already: "
                                   "move it away first")
        prefix = f"{LIBRARY}/{primary}/"
        odd = c.execute(
            "SELECT v.library_path FROM versions v JOIN locations l ON l.id = v.location_id "
            "WHERE l.agent_id = ? AND substr(v.library_path, 1, ?) != ? LIMIT 1",
            (primary, len(prefix), prefix)).fetchone()
        if odd is not None:
            promoted_library_path(primary, str(odd[0]))  # raises, naming the path
        for watch, rel in c.execute("SELECT watch_name, rel_path FROM locations "
                                    "WHERE agent_id = ?", (primary,)):
            promoted_name(str(watch), str(rel))  # raises on a path that is not <watch>/<rel>

    # changing --------------------------------------------------------------------------------

    def commit(self, plan: Plan) -> None:
        """The whole catalog change and the renames it owes, in one transaction."""
        primary = plan.primary
        ts = int(time.time() * 1000)
        with transaction(self._conn, self._lock, "the server catalog") as c:
            c.execute("UPDATE versions SET library_path = ? || substr(library_path, ?) "
                      "WHERE location_id IN (SELECT id FROM locations WHERE agent_id = ?)",
                      (f"{LIBRARY}/", len(f"{LIBRARY}/{primary}/") + 1, primary))
            moves = []
            for loc_id, watch, rel in c.execute(
                    "SELECT id, watch_name, rel_path FROM locations WHERE agent_id = ?",
                    (primary,)).fetchall():
                name = promoted_name(str(watch), str(rel))
                moves.append((name.agent_id, name.watch_name, name.rel_path,
                              folder_of(name.rel_path), int(loc_id)))
            c.executemany("UPDATE locations SET agent_id = ?, watch_name = ?, rel_path = ?, "
                          "folder = ? WHERE id = ?", moves)
            for agent in plan.agents:
                c.execute("INSERT INTO agents (agent_id, first_seen_ms, last_seen_ms) "
                          "VALUES (?, ?, 0) ON CONFLICT (agent_id) DO NOTHING",
                          (agent.agent_id, ts))
                c.execute("INSERT INTO promotion_renames (source, target) VALUES (?, ?)",
                          (f"{LIBRARY}/{primary}/{agent.agent_id}",
                           f"{LIBRARY}/{agent.agent_id}"))
            c.execute("DELETE FROM agents WHERE agent_id = ?", (primary,))
            c.execute("DELETE FROM agent_pending_shoots WHERE agent_id = ?", (primary,))
            _recount_summaries(c)
            c.execute("INSERT INTO audit (ts_ms, actor, action, target, result, detail) "
                      "VALUES (?, 'cli', 'promote', ?, 'ok', ?)", (ts, primary, ", ".join(
                          f"{a.agent_id}: {a.paths} paths" for a in plan.agents)))

    def finish_renames(self) -> list[Rename]:
        """Does every rename still owed, in order, each durable before it is struck off;
        returns those finished now (renamed, or found renamed by a run a crash cut short).
        Refuses when both a source and its target exist."""
        done = []
        for rename in self.pending_renames():
            source, target = self._root / rename.source, self._root / rename.target
            if os.path.lexists(source):
                if os.path.lexists(target):
                    raise PhotonicError(f"both {source} and {target} exist: the promotion "
                                        "cannot finish; merge or move one by hand, then "
                                        "run it again")
                os.rename(source, target)
                fsync_directory(target.parent)
                fsync_directory(source.parent)
                faults.hit("promote_after_rename")
            with transaction(self._conn, self._lock, "the server catalog") as c:
                c.execute("DELETE FROM promotion_renames WHERE source = ?", (rename.source,))
            done.append(rename)
            _remove_if_empty(source.parent)
        return done


def _remove_if_empty(folder: Path) -> None:
    """library/<primary>, once every agent folder left it (something else in it stays)."""
    try:
        folder.rmdir()
    except OSError:
        return
    fsync_directory(folder.parent)


def _recount_summaries(c: sqlite3.Connection) -> None:
    """Migration 009's agent totals and folder tree, recounted from the paths as they are now
    (the folder column is set with each moved path)."""
    c.execute("DELETE FROM agent_totals")
    c.execute("INSERT INTO agent_totals (agent_id, photos, bytes) " + TOTALS_BY_AGENT_SQL)
    c.execute("DELETE FROM library_folders")
    c.execute(
        "WITH RECURSIVE folders (agent_id, watch_name, path) AS ("
        " SELECT DISTINCT agent_id, watch_name, folder FROM locations WHERE folder != ''"
        " UNION"
        " SELECT agent_id, watch_name, rtrim(rtrim(path, replace(path, '/', '')), '/')"
        " FROM folders WHERE instr(path, '/') > 0) "
        "INSERT INTO library_folders (agent_id, watch_name, parent, name) "
        "SELECT agent_id, watch_name, parent, "
        "CASE WHEN parent = '' THEN path ELSE substr(path, length(parent) + 2) END "
        "FROM (SELECT agent_id, watch_name, path, "
        "rtrim(rtrim(path, replace(path, '/', '')), '/') AS parent FROM folders)")
