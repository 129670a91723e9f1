"""The key=value log line: its timestamp (the formatter remembers the last second it
formatted), quoting of awkward values, escaping of every unprintable character, and the
event fields."""

from __future__ import annotations

import logging

import pytest

from photonic.logfmt import KeyValueFormatter
from tests.support.logrecords import record_fields


def _record(created: float, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("photonic.test", logging.INFO, __file__, 1, "file_committed",
                               (), None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    record.__dict__.update(fields)
    return record


def test_timestamps_stay_right_within_a_second_and_across_seconds() -> None:
    formatter = KeyValueFormatter()
    lines = [formatter.format(_record(t)) for t in
             (1_700_000_000.25, 1_700_000_000.75, 1_700_000_001.0, 1_699_999_999.5)]
    assert [line.split()[0] for line in lines] == [
        "ts=2023-11-14T22:13:20.250Z", "ts=2023-11-14T22:13:20.750Z",
        "ts=2023-11-14T22:13:21.000Z", "ts=2023-11-14T22:13:19.500Z"]


def test_fields_follow_the_message_and_awkward_values_are_quoted() -> None:
    line = KeyValueFormatter().format(_record(1_700_000_000.0, event="file_committed",
                                              path='2024 trip/a "b".jpg', size=12))
    assert line.endswith('event=file_committed path="2024 trip/a \\"b\\".jpg" size=12')
    assert " level=info logger=photonic.test msg=file_committed " in line


@pytest.mark.parametrize("hostile", [
    "IMG_0001.jpg\r\x1b[2Kcaller=admin action=ResolveConflicts",  # overwrites the terminal line
    "a.jpg\nts=2026-01-01T00:00:00.000Z level=info logger=photonic.server msg=x caller=admin",
    "a.jpg\x85caller=admin",  # NEL: a line break to str.splitlines and some viewers
    "a\u2028b\u2029c\x0b\x0c\x1c\x1d\x1e",  # the other line separators
    "gpj.\u202eexe",  # right-to-left override: shows as "exe.jpg"
    "zero\u200bwidth\x00nul\x7fdel\x9bcsi\udcff",  # format, C0, DEL, C1, a surrogate escape
])
def test_control_characters_are_escaped_in_messages_and_values(hostile: str) -> None:
    """Whatever a file name or a peer's text holds (CR, ESC, NEL, line and paragraph
    separators, bidi overrides, C0, DEL, C1, undecodable bytes), the log line stays one
    printable line with exactly the fields photonic wrote: no value can end it, start a
    forged record, add a field or move a terminal's cursor."""
    record = _record(1_700_000_000.0, event="file_committed", path=hostile)
    record.msg = hostile
    line = KeyValueFormatter().format(record)
    assert line.isprintable() and len(line.splitlines()) == 1
    fields = record_fields(line)
    assert set(fields) == {"ts", "level", "logger", "msg", "event", "path"}
    assert fields["msg"] == fields["path"]
    assert "caller" not in fields and "action" not in fields


def test_escapes_name_the_character_they_replace() -> None:
    """Escapes read back as what was there: `\\r`, `\\n`, `\\t`, `\\x1b`, `\\x85`, `\\u202e`."""
    line = KeyValueFormatter().format(_record(1_700_000_000.0, path="a\r\n\t\x1b\x85\u202e"))
    assert line.endswith(' path="a\\r\\n\\t\\x1b\\x85\\u202e"')


def test_plain_values_stay_bare_and_backslashes_in_quoted_values_are_escaped() -> None:
    """Ordinary values are not quoted (grep-friendly); in a quoted value a backslash is
    doubled, so `\\n` written by a person is not read back as a newline."""
    line = KeyValueFormatter().format(_record(1_700_000_000.0, agent="laptop",
                                              path="C:\\new folder\\n.jpg"))
    assert " agent=laptop " in line
    assert line.endswith(' path="C:\\\\new folder\\\\n.jpg"')
