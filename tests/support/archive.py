"""A primary server and an archive node for replication tests: real daemons, each with its
own server-role certificate; the archive gives the primary's certificate the replicate scope
and takes no agent uploads."""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photonic.archive_key import load_key
from photonic.sealing import open_bytes
from photonic.server.replication.sealed import (
    INDEX_DIR,
    SEALED_WATCH,
    merge_indexes,
    read_index,
)
from tests.support.daemons import ServerHandle, free_port, sqlite_rows, start_server
from tests.support.pki import TestPki, server_identity

PRIMARY_ID = "primary1"
ARCHIVE_ID = "archive1"
NODE = "closet"


def _security(pki: TestPki, name: str) -> dict[str, str]:
    cert, key = server_identity(pki, name)
    return {"cert_path": str(cert), "key_path": str(key), "ca_path": str(pki.ca)}


def start_archive(root: Path, pki: TestPki, *, port: int | None = None) -> ServerHandle:
    return start_server(root, pki, port=port, extra={
        "server": {"role": "archive"}, "security": _security(pki, ARCHIVE_ID),
        "agents": {"admin": {"scopes": ["admin"]}, PRIMARY_ID: {"scopes": ["replicate"]}},
        "default_scopes": []})


def start_primary(root: Path, pki: TestPki, archive_endpoint: str,
                  node: dict[str, Any] | None = None,
                  archive_key: Path | None = None) -> ServerHandle:
    """archive_key: security.archive_key_path (for a node with encrypted: true)."""
    http_port = free_port()
    security = _security(pki, PRIMARY_ID)
    if archive_key is not None:
        security["archive_key_path"] = str(archive_key)
    handle = start_server(root, pki, extra={
        "server": {"web_ui_port": http_port}, "security": security,
        "storage": {"backup_nodes": [{"name": NODE, "endpoint": archive_endpoint,
                                      **(node or {})}]}})
    handle.http_port = http_port
    return handle


@dataclass(frozen=True)
class Replication:
    """The primary's replication metrics for NODE, as /metrics shows them."""

    lag_s: float
    bytes_pending: float
    confirmed: float
    bytes_sent: float


def replication_metrics(primary: ServerHandle) -> Replication:
    with urllib.request.urlopen(f"http://127.0.0.1:{primary.http_port}/metrics",
                                timeout=10) as reply:
        text = reply.read().decode()

    def value(name: str) -> float:
        m = re.search(rf'^{name}{{node="{NODE}"}} (\S+)$', text, re.MULTILINE)
        assert m is not None, f"{name} missing from /metrics"
        return float(m.group(1))

    return Replication(value("photonic_replication_lag_seconds"),
                       value("photonic_replication_bytes_pending"),
                       value("photonic_replication_objects_confirmed_total"),
                       value("photonic_replication_bytes_sent_total"))


def archive_library(archive: ServerHandle) -> Path:
    """Where the archive keeps the primary's library: library/<primary id>/."""
    return archive.storage / "library" / PRIMARY_ID


def unconfirmed_versions(primary: ServerHandle) -> int:
    rows = sqlite_rows(
        primary.storage / "catalog.db",
        "SELECT COUNT(*) FROM versions v WHERE NOT EXISTS (SELECT 1 FROM replica_versions r "
        "WHERE r.node = ? AND r.location_id = v.location_id AND r.version = v.version)",
        (NODE,))
    return int(rows[0][0])


def sealed_index(archive: ServerHandle, key_path: Path) -> dict[str, tuple[str, ...]]:
    """{photo sha256: library paths} from every sealed index object on the archive's disk,
    opened with the key (what a restore sees)."""
    key = load_key(key_path)
    folder = archive_library(archive) / SEALED_WATCH / INDEX_DIR
    indexes = [read_index(open_bytes(path.read_bytes(), key.object_key(path.name)))
               for path in (folder.glob("*") if folder.exists() else [])]
    return {sha: paths for sha, (_size, paths) in merge_indexes(indexes).items()}


def start_promoted(archive: ServerHandle, http_port: int) -> ServerHandle:
    """The archive's storage and address served again as a primary (server.role: primary,
    agents may sync), as an admin would after `photonic server promote`."""
    root = archive.root / "promoted"
    handle = start_server(root, archive.pki, port=archive.port, extra={
        "server": {"storage_path": str(archive.storage), "web_ui_port": http_port},
        "security": _security(archive.pki, ARCHIVE_ID)})
    handle.http_port = http_port
    return handle
