"""The key=value log line: its timestamp (the formatter remembers the last second it
formatted), quoting of awkward values, and the event fields."""

from __future__ import annotations

import logging

from photonic.logfmt import KeyValueFormatter


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
