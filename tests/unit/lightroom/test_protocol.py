"""Validation of the messages the plugin sends."""

from __future__ import annotations

import pytest

from photonic.errors import InvalidInput
from photonic.lightroom import protocol as p


def test_handshake_version() -> None:
    """Version 1 is accepted; another is refused naming the versions spoken."""
    assert p.parse_handshake({"client_type": "lightroom", "protocol_version": 1}) \
        == p.Handshake("lightroom", 1)
    for bad in (2, "1", True, None):
        with pytest.raises(InvalidInput, match=r"speaks \[1\]"):
            p.parse_handshake({"client_type": "lightroom", "protocol_version": bad})


def test_send_messages_parse() -> None:
    """Each message type becomes its typed value."""
    def send(message: dict[str, object]) -> p.Inbound:
        return p.parse_send({"client_id": "abc", "message": message})[1]

    assert send({"type": "register", "lightroom_version": "13.2", "catalog": "Main",
                 "plugin_version": "1.0"}) == p.Register("13.2", "Main", "1.0")
    assert send({"type": "subscribe", "channels": ["jobs", "system"]}) \
        == p.Subscribe(frozenset({"jobs", "system"}), True)
    assert send({"type": "ping"}) == p.Ping()
    assert send({"type": "job_progress", "job_id": "j", "attempt": 2, "fraction": 0.5,
                 "message": "exporting"}) == p.JobProgress("j", 2, 0.5, "exporting")
    assert send({"type": "job_completed", "job_id": "j", "attempt": 2,
                 "outputs": ["/a", "/a", "/b"]}) == p.JobCompleted("j", 2, ("/a", "/b"))
    assert send({"type": "job_failed", "job_id": "j", "attempt": 2, "error": " no "}) \
        == p.JobFailed("j", 2, "no")


@pytest.mark.parametrize(("message", "says"), [
    ({"type": "shout"}, "is unknown"),
    ({"type": "register", "lightroom_version": "13.2 beta", "catalog": "",
      "plugin_version": "1"}, "dotted numbers"),
    ({"type": "subscribe", "channels": ["everything"]}, "channels"),
    ({"type": "job_progress", "job_id": "j", "attempt": 1, "fraction": 1.5}, "from 0 to 1"),
    ({"type": "job_progress", "job_id": "j", "attempt": -1, "fraction": 0.5}, "attempt"),
    ({"type": "job_completed", "job_id": "j", "attempt": 1, "outputs": []}, "job_failed"),
    ({"type": "job_completed", "job_id": "x" * 200, "attempt": 1, "outputs": ["/a"]},
     "job_id must be a string of 1 to 128"),
])
def test_bad_messages_are_refused(message: dict[str, object], says: str) -> None:
    """A malformed message is refused with a sentence naming the field."""
    with pytest.raises(InvalidInput, match=says):
        p.parse_send({"client_id": "abc", "message": message})


def test_bodies_and_polls() -> None:
    """Non-JSON, non-object bodies and bad poll queries are refused; the wait is capped."""
    with pytest.raises(InvalidInput, match="not JSON"):
        p.parse_body(b"{")
    with pytest.raises(InvalidInput, match="JSON object"):
        p.parse_body(b"[]")
    assert p.parse_poll({"client_id": "abc", "timeout": "600"}) == ("abc", 60.0)
    assert p.parse_poll({"client_id": "abc"})[1] == p.DEFAULT_POLL_TIMEOUT_S
    for bad in ("soon", "-1", "nan"):
        with pytest.raises(InvalidInput, match="timeout"):
            p.parse_poll({"client_id": "abc", "timeout": bad})
    with pytest.raises(InvalidInput, match="client_id"):
        p.parse_poll({"client_id": "../etc"})
