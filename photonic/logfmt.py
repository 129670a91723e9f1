"""Structured logging: one line per event, carrying agent and correlation ids, as key=value
(the default) or as a JSON object with the same fields (`--log-format json`)."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import time
from typing import Any, TextIO

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


_SPECIAL = re.compile(r'[ "=]')
_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _quote(value: object) -> str:
    """A value as one token of a key=value line. Quoted when it holds a space, a quote, an `=`
    or anything unprintable; every character that is not printable (C0, DEL, C1, line and
    paragraph separators, bidi and zero-width format characters, lone surrogates) is
    escaped, so no value can end the line, fake a field, or move a terminal's cursor:
    file names and peers' text are logged as they are, never as what they pretend to be."""
    text = str(value)
    printable = text.isprintable()
    if text and printable and _SPECIAL.search(text) is None:
        return text
    if printable:  # the common case, kept off the per-character path
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return '"' + "".join(_escape(c) for c in text) + '"'


logfmt_value = _quote
"""The public name for one escaped key=value token (the audit tail formats rows with it)."""


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else (
        f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def _timestamp(record: logging.LogRecord, cache: tuple[int, str]) -> tuple[tuple[int, str], str]:
    second = int(record.created)
    cached, ts = cache
    if cached != second:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        cache = (second, ts)
    return cache, f"{ts}.{int(record.msecs):03d}Z"


class KeyValueFormatter(logging.Formatter):
    """Formats records as `ts=... level=... logger=... msg=... key=value ...` for grep and Loki."""

    _second: tuple[int, str] = (-1, "")
    """The last whole second formatted: a busy server logs many lines in each."""

    def format(self, record: logging.LogRecord) -> str:
        self._second, ts = _timestamp(record, self._second)
        parts = [
            f"ts={ts}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                parts.append(f"{key}={_quote(value)}")
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """The same fields as KeyValueFormatter, as one JSON object per line (ASCII only, so a
    control character in a value is escaped here too and cannot end the line)."""

    _second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        self._second, ts = _timestamp(record, self._second)
        fields: dict[str, object] = {"ts": ts, "level": record.levelname.lower(),
                                     "logger": record.name, "msg": record.getMessage()}
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                fields[key] = _json_value(value)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return json.dumps(fields, ensure_ascii=True)


def _json_value(value: object) -> object:
    """Numbers, booleans and None stay JSON scalars; anything else as its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


LOG_FORMATS = ("logfmt", "json")
LOG_FORMAT_ENV = "PHOTONIC_LOG_FORMAT"
"""Set by the CLI from `--log-format`, so helper processes (the server's stderr tap) that it
starts log in the same format."""


def configure_logging(level: str = "info", stream: TextIO | None = None,
                      log_format: str | None = None, **context: str) -> None:
    """Routes every photonic log line to stream (stderr by default) as key=value, or as JSON
    with log_format="json" (default: $PHOTONIC_LOG_FORMAT, else key=value); context is added
    to each line."""
    chosen = log_format or os.environ.get(LOG_FORMAT_ENV, "logfmt")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else KeyValueFormatter())
    if context:
        handler.addFilter(_ContextFilter(context))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("watchdog").setLevel(logging.WARNING)
    logging.getLogger("exifread").setLevel(logging.ERROR)


class _ContextFilter(logging.Filter):
    def __init__(self, context: dict[str, str]) -> None:
        super().__init__()
        self._context = context

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self._context.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Logs one named event (`event=name`) with its fields as key=value pairs."""
    logger.log(level, name, extra={"event": name, **fields})
