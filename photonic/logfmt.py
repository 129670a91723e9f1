"""Structured logging: one key=value line per event, carrying agent and correlation ids."""

from __future__ import annotations

import logging
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


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else (
        f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


class KeyValueFormatter(logging.Formatter):
    """Formats records as `ts=... level=... logger=... msg=... key=value ...` for grep and Loki."""

    _second: tuple[int, str] = (-1, "")
    """The last whole second formatted: a busy server logs many lines in each."""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached, ts = self._second
        if cached != second:
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, ts)
        parts = [
            f"ts={ts}.{int(record.msecs):03d}Z",
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


def configure_logging(level: str = "info", stream: TextIO | None = None,
                      **context: str) -> None:
    """Routes every photonic log line to stream (stderr by default) as key=value; context is
    added to each line."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(KeyValueFormatter())
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
