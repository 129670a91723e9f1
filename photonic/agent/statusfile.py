"""The agent's live status, written atomically to `<buffer_path>/status.json` so that
`photonic status` can show it without a connection to the running agent."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"


@dataclass
class LiveStatus:
    agent_id: str
    pid: int = field(default_factory=os.getpid)
    running: bool = True
    state: str = "offline"
    state_since_unix: float = field(default_factory=time.time)
    reason: str = ""
    endpoint: str = ""
    endpoints: list[str] = field(default_factory=list)
    last_sync_unix: float = 0.0
    session_files_done: int = 0
    session_bytes_done: int = 0
    session_started_unix: float = field(default_factory=time.time)
    bytes_sent: int = 0
    recent_rate_bytes_per_s: float = 0.0  # over the last RECENT_RATE_WINDOW_S; 0 when idle
    conflicts: int = 0
    updated_unix: float = field(default_factory=time.time)


def write_status(buffer_path: Path, status: LiveStatus) -> None:
    status.updated_unix = time.time()
    target = buffer_path / STATUS_FILE
    tmp = target.with_suffix(".json.tmp")
    # 0600 whatever the umask: it names the agent's endpoints and what it is doing.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0),
                 0o600)
    with open(fd, "w", encoding="utf-8") as out:
        os.fchmod(fd, 0o600)  # a temporary left by an older version keeps its mode otherwise
        out.write(json.dumps(asdict(status), indent=1))
    os.replace(tmp, target)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(buffer_path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((buffer_path / STATUS_FILE).read_text("utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data
