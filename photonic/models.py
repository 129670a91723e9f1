"""Domain types shared by server and agent; protobuf messages never travel past wire.py."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType

ContentHash = NewType("ContentHash", str)
"""Lowercase hex SHA-256 of a photo's raw bytes: the identity of content everywhere."""

AgentId = NewType("AgentId", str)
"""An agent's name: the subject CN of its certificate, never a request field."""

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_AGENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def is_content_hash(value: str) -> bool:
    """True for a well-formed lowercase hex SHA-256; the store trusts nothing else as a name."""
    return bool(_HASH_RE.match(value))


def is_agent_id(value: str) -> bool:
    """Agent ids become directory names in the library, so they are kept to a safe alphabet."""
    return bool(_AGENT_ID_RE.match(value)) and value not in {".", ".."}


class AgentState(StrEnum):
    OFFLINE = "offline"
    CONNECTING = "connecting"
    SYNCING = "syncing"
    MONITORING = "monitoring"
    CONFLICT = "conflict"
    ERROR = "error"


class Scope(StrEnum):
    SYNC = "sync"
    WORK = "work"
    ADMIN = "admin"
    REPLICATE = "replicate"  # a primary server replicating its objects to this archive node


class ConflictPolicy(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"
    SERVER_WINS = "server_wins"


class SyncMethod(StrEnum):
    """How the server makes stored photos durable (server/fs_sync.py)."""

    AUTO = "auto"  # one syncfs per group of commits where that is safe, else per file
    PER_FILE = "per-file"  # fsync every file and folder (a disk shared with busy writers)


class WatchMode(StrEnum):
    REFERENCE = "reference"
    INGEST = "ingest"


class Decision(StrEnum):
    HAVE = "have"
    SEND = "send"
    REJECT = "reject"
    PROVE = "prove"  # show you hold the bytes (a PossessionProof), then HAVE


@dataclass(frozen=True)
class ExifSummary:
    """What EXIF told us; every field optional, since EXIF is metadata and never a gate."""

    capture_time_unix_ms: int = 0
    camera_make: str = ""
    camera_model: str = ""
    lens_model: str = ""
    has_gps: bool = False
    width: int = 0
    height: int = 0
    orientation: int = 0

    @property
    def camera(self) -> str:
        return f"{self.camera_make} {self.camera_model}".strip()


@dataclass(frozen=True)
class ManifestEntry:
    """One file an agent offers the server in a batch."""

    sha256: ContentHash
    size: int
    watch_name: str
    relative_path: str
    exif: ExifSummary = field(default_factory=ExifSummary)
    mtime_ns: int = 0
    base_sha256: str = ""
    incomplete: bool = False


@dataclass(frozen=True)
class FileDecision:
    """The server's answer to one manifest entry."""

    sha256: ContentHash
    watch_name: str
    relative_path: str
    action: Decision
    offset: int = 0
    reason: str = ""
    version: int = 0
    conflict: bool = False
    nonce: bytes = b""  # PROVE only
    ranges: tuple[tuple[int, int], ...] = ()  # PROVE only: (offset, length), in order


@dataclass(frozen=True)
class PossessionProof:
    """An agent's answer to PROVE: SHA-256 of the nonce and then the bytes of each range."""

    sha256: ContentHash
    nonce: bytes
    digest: bytes


@dataclass(frozen=True)
class ChunkData:
    """A piece of one file's content as it travels: data may be an LZ4 frame."""

    sha256: ContentHash
    offset: int
    data: bytes
    lz4: bool
    raw_size: int


@dataclass(frozen=True)
class CommittedFile:
    """A path durably recorded on the server: the only thing that releases an agent's queue."""

    sha256: ContentHash
    watch_name: str
    relative_path: str
    version: int
    conflict: bool = False
    library_path: str = ""


@dataclass(frozen=True)
class FailedFile:
    sha256: ContentHash
    reason: str
    retryable: bool
