"""A strict reader of photonic's key=value log lines, for tests that prove nobody else can
write one: a line either is exactly one record (`ts level logger msg` then fields, values
bare or double-quoted with backslash escapes, nothing unprintable) or it is not."""

from __future__ import annotations

import re

_VALUE = r'"(?:[^"\\]|\\.)*"|[^\s"=]+'
_FIELD = re.compile(rf'([A-Za-z_][\w.]*)=({_VALUE})')
_RECORD = re.compile(
    rf'ts=\S+ level=(?:debug|info|warning|error|critical) logger=[\w.]+ msg=(?:{_VALUE})'
    rf'(?: [A-Za-z_][\w.]*=(?:{_VALUE}))*')


def is_record(line: str) -> bool:
    """True when line is one whole photonic record and nothing else."""
    return line.isprintable() and _RECORD.fullmatch(line) is not None


def record_fields(line: str) -> dict[str, str]:
    """The fields of one record, values unquoted (escapes left as written); {} when line is
    not a record."""
    if not is_record(line):
        return {}
    return {key: value[1:-1] if value.startswith('"') else value
            for key, value in _FIELD.findall(line)}


def not_records(log: str) -> list[str]:
    """Every line of a log that is not exactly one record."""
    return [line for line in log.split("\n") if line and not is_record(line)]
