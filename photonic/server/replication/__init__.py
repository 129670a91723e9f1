"""Replication of a primary's objects and catalog rows to archive nodes (issue 21): the
primary is a client of each node's PhotonicSync.SyncBatch, exactly like an agent, through the
agent's own exchange code."""
