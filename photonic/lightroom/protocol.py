"""The bridge's wire messages (docs/lightroom-bridge.md): everything the plugin sends is checked
here into typed values before the bridge acts on it, and everything the bridge sends is built
here. Nothing here knows of HTTP, clients or jobs' state."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from photonic.errors import InvalidInput, PhotonicError

PROTOCOL_VERSIONS = (1,)
MAX_BODY_BYTES = 64 * 1024
"""A request body larger than this is refused (413): no message needs more."""
MAX_TEXT_CHARS = 1024
MAX_PATH_CHARS = 4096
MAX_OUTPUTS = 64
MAX_POLL_TIMEOUT_S = 60.0
DEFAULT_POLL_TIMEOUT_S = 25.0
CHANNELS = ("jobs", "system", "photos")
JOB_NOTICES = frozenset({"job_assigned", "job_cancelled"})
"""Messages about a job: never dropped from a full queue, or the job would be lost."""
_VERSION = re.compile(r"[0-9]{1,4}(\.[0-9]{1,6}){0,3}")
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class JobConflict(PhotonicError):
    """A job message for a job or attempt this client does not hold (cancelled, stale, unknown):
    the plugin drops the job."""


@dataclass(frozen=True)
class Handshake:
    client_type: str
    protocol_version: int


@dataclass(frozen=True)
class Register:
    lightroom_version: str
    catalog: str
    plugin_version: str


@dataclass(frozen=True)
class Subscribe:
    channels: frozenset[str]
    on: bool  # False for unsubscribe


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    attempt: int
    fraction: float
    message: str


@dataclass(frozen=True)
class JobCompleted:
    job_id: str
    attempt: int
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class JobFailed:
    job_id: str
    attempt: int
    error: str


JobMessage = JobProgress | JobCompleted | JobFailed
Inbound = Register | Subscribe | Ping | JobMessage
Fields = Mapping[str, object]
_Parser = Callable[[Fields], Inbound]


def parse_body(body: bytes) -> dict[str, object]:
    """A request body as a JSON object, or InvalidInput saying why not."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInput(f"the body is not JSON in UTF-8: {e}") from None
    if not isinstance(value, dict):
        raise InvalidInput("the body must be a JSON object")
    return value


def parse_handshake(body: Fields) -> Handshake:
    client_type = _text(body, "client_type", max_chars=64)
    version = body.get("protocol_version")
    if not isinstance(version, int) or isinstance(version, bool) \
            or version not in PROTOCOL_VERSIONS:
        raise InvalidInput(f"protocol_version {json.dumps(version)} is not spoken here: this "
                           f"bridge speaks {list(PROTOCOL_VERSIONS)}; update the plugin or the "
                           "agent so they match")
    return Handshake(client_type, version)


def parse_client_id(body: Fields) -> str:
    client_id = _text(body, "client_id", max_chars=128)
    if not _ID.fullmatch(client_id):
        raise InvalidInput("client_id is not one this bridge hands out")
    return client_id


def parse_send(body: Fields) -> tuple[str, Inbound]:
    """The client id and the typed message of a /bridge/send body."""
    client_id = parse_client_id(body)
    message = body.get("message")
    if not isinstance(message, dict):
        raise InvalidInput("message must be a JSON object with a type")
    kind = message.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise InvalidInput(f"message type {json.dumps(kind)} is unknown: expected one of "
                           f"{sorted(_PARSERS)}")
    return client_id, parser(message)


def parse_poll(query: Mapping[str, str]) -> tuple[str, float]:
    """The client id and the wait in seconds (0 to 60) of a /bridge/poll query."""
    client_id = parse_client_id(query)
    raw = query.get("timeout")
    if raw is None:
        return client_id, DEFAULT_POLL_TIMEOUT_S
    try:
        timeout_s = float(raw)
    except ValueError:
        raise InvalidInput(f"timeout must be a number of seconds (got {raw[:32]!r})") from None
    if not math.isfinite(timeout_s) or timeout_s < 0:
        raise InvalidInput("timeout must be a number of seconds, 0 or more")
    return client_id, min(timeout_s, MAX_POLL_TIMEOUT_S)


def _register(m: Fields) -> Register:
    version = _text(m, "lightroom_version", max_chars=32)
    if not _VERSION.fullmatch(version):
        raise InvalidInput(f"lightroom_version {version!r} must be dotted numbers, like 13.2")
    return Register(version, _text(m, "catalog", max_chars=MAX_TEXT_CHARS, empty_ok=True),
                    _text(m, "plugin_version", max_chars=64))


def _subscription(on: bool) -> _Parser:
    def parse(m: Fields) -> Subscribe:
        channels = m.get("channels")
        if not isinstance(channels, list) or not channels \
                or not all(isinstance(c, str) and c in CHANNELS for c in channels):
            raise InvalidInput(f"channels must be a non-empty list of {list(CHANNELS)}")
        return Subscribe(frozenset(str(c) for c in channels), on)
    return parse


def _ping(m: Fields) -> Ping:
    return Ping()


def _progress(m: Fields) -> JobProgress:
    fraction = m.get("fraction")
    if not isinstance(fraction, int | float) or isinstance(fraction, bool) \
            or not 0.0 <= fraction <= 1.0:
        raise InvalidInput("fraction must be a number from 0 to 1")
    return JobProgress(_text(m, "job_id", max_chars=128), _attempt(m), float(fraction),
                       _text(m, "message", max_chars=MAX_TEXT_CHARS, empty_ok=True,
                             required=False))


def _completed(m: Fields) -> JobCompleted:
    outputs = m.get("outputs")
    if not isinstance(outputs, list) or not 1 <= len(outputs) <= MAX_OUTPUTS \
            or not all(isinstance(p, str) and 0 < len(p) <= MAX_PATH_CHARS for p in outputs):
        raise InvalidInput(f"outputs must list 1 to {MAX_OUTPUTS} file paths; a job that "
                           "exported nothing is reported with job_failed")
    unique = tuple(dict.fromkeys(str(p) for p in outputs))
    return JobCompleted(_text(m, "job_id", max_chars=128), _attempt(m), unique)


def _failed(m: Fields) -> JobFailed:
    error = m.get("error")
    if not isinstance(error, str):
        raise InvalidInput("error must be Lightroom's message, a string")
    text = error.strip()[:MAX_TEXT_CHARS] or "Lightroom reported a failure without a message"
    return JobFailed(_text(m, "job_id", max_chars=128), _attempt(m), text)


def _text(m: Fields, key: str, *, max_chars: int, empty_ok: bool = False,
          required: bool = True) -> str:
    value = m.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > max_chars or (not value and not empty_ok):
        least = 0 if empty_ok else 1
        raise InvalidInput(f"{key} must be a string of {least} to {max_chars} characters")
    return value


def _attempt(m: Fields) -> int:
    attempt = m.get("attempt")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
        raise InvalidInput("attempt must be a whole number, 0 or more")
    return attempt


_PARSERS: dict[str, _Parser] = {
    "register": _register,
    "subscribe": _subscription(True),
    "unsubscribe": _subscription(False),
    "ping": _ping,
    "job_progress": _progress,
    "job_completed": _completed,
    "job_failed": _failed,
}


def connection_established(client_id: str, server_time_ms: int) -> dict[str, object]:
    return {"type": "connection_established", "client_id": client_id,
            "server_time": server_time_ms, "protocol_version": PROTOCOL_VERSIONS[-1]}


def pong(server_time_ms: int) -> dict[str, object]:
    return {"type": "pong", "server_time": server_time_ms}


def dropped(count: int) -> dict[str, object]:
    return {"type": "dropped", "count": count}


def job_assigned(job_id: str, attempt: int, input_path: str, export_dir: str,
                 develop: Fields, export: Fields) -> dict[str, object]:
    return {"type": "job_assigned", "job_id": job_id, "attempt": attempt,
            "input_path": input_path, "export_dir": export_dir,
            "develop": dict(develop), "export": dict(export)}


def job_cancelled(job_id: str, attempt: int) -> dict[str, object]:
    return {"type": "job_cancelled", "job_id": job_id, "attempt": attempt}


def error(sentence: str) -> dict[str, object]:
    return {"type": "error", "error": sentence}
