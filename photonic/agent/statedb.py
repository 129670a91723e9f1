"""The agent's durable local state: the file index, the upload queue and the watch states,
one SQLite file behind one facade.

Each concern has its module (statedb_index, statedb_queue, statedb_watches) over the one
connection of statedb_base, so that a transaction may span tables (recording a file writes
its index row and its queue row together). Callers import everything from here."""

from __future__ import annotations

from photonic.agent.statedb_index import IndexEntry, IndexTable
from photonic.agent.statedb_queue import FileRecord, PendingFile, QueueStats, QueueTable
from photonic.agent.statedb_watches import WatchState, WatchStatus, WatchTable

__all__ = [
    "AgentStateDB",
    "FileRecord",
    "IndexEntry",
    "PendingFile",
    "QueueStats",
    "WatchState",
    "WatchStatus",
]


class AgentStateDB(IndexTable, QueueTable, WatchTable):
    """One SQLite file (WAL); every public method is thread-safe and durable on return."""
