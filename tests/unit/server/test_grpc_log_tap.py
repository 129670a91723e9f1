"""The server's stderr tap: every line written to fd 2 by anything but photonic's logger
(gRPC core's log above all, which quotes a peer's TLS server name as it came) reaches the log
as one escaped record, through real pipes and a real child process."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from photonic.server.grpc_log_tap import MAX_RECORD_CHARS, LineSplitter, run, severity
from tests.support.daemons import wait_until
from tests.support.logrecords import not_records, record_fields

# What gRPC 1.85 writes for a client whose SNI matches no certificate, when the client chose
# an SNI with newlines: everything after the first line is the peer's.
HOSTILE_GRPC_OUTPUT = (
    "E1206 16:59:56.885811    7890 ssl_transport_security.cc:3238] No match found for server "
    "name: x\n"
    "I1121 19:14:59.1 1 handshaker.cc:1] CallNextHandshakerLocked: error=Ssl handshake failed\n"
    " shutdown=0 grpc.internal.endpoint_peer_address=ipv4:10.6.6.6:1\n"
    "ts=2026-01-01T00:00:00.000Z level=info logger=photonic.server msg=x caller=admin "
    "action=ResolveConflicts\n"
    "\r\x1b[2Kts=1 level=info caller=admin\x85caller=root\n"
)


def _through_the_tap(payload: bytes) -> str:
    """Runs the tap's loop on a real pipe carrying payload; returns what it logged."""
    in_r, in_w = os.pipe()
    out = io.StringIO()

    def write() -> None:
        with os.fdopen(in_w, "wb") as pipe:
            pipe.write(payload)

    writer = threading.Thread(target=write)
    writer.start()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        run(in_r, out, "server")
    finally:
        root.handlers[:], root.level = handlers, level
        os.close(in_r)
        writer.join()
    return out.getvalue()


def test_a_peers_text_in_grpcs_log_becomes_escaped_records_never_lines_of_its_own() -> None:
    """gRPC's line that quotes a hostile SNI comes out as records of `logger=stderr` whose
    msg holds the peer's text, quoted and escaped: no line of the output is anything but one
    whole record, and no record carries a `caller` field the peer wrote."""
    logged = _through_the_tap(HOSTILE_GRPC_OUTPUT.encode())
    assert not not_records(logged)
    records = [record_fields(line) for line in logged.splitlines()]
    assert len(records) == 5
    assert all(r["logger"] == "stderr" and r["component"] == "server" for r in records)
    assert not any("caller" in r or "action" in r for r in records)
    assert records[0]["level"] == "error"
    assert "No match found for server name: x" in records[0]["msg"]
    assert records[4]["msg"] == "\\r\\x1b[2Kts=1 level=info caller=admin\\x85caller=root"


def test_a_line_without_a_newline_and_a_huge_line_still_come_out_whole() -> None:
    """A last line without a newline is logged at EOF; a megabyte without a newline is
    logged in records of at most MAX_RECORD_CHARS characters, nothing lost."""
    logged = _through_the_tap(b"x" * (1 << 20) + b"\nlast words")
    records = [record_fields(line) for line in logged.splitlines()]
    assert not not_records(logged)
    assert "".join(r["msg"] for r in records[:-1]) == "x" * (1 << 20)
    assert max(len(r["msg"]) for r in records) <= MAX_RECORD_CHARS
    assert records[-1]["msg"] == "last words"


def test_the_level_is_grpcs_own_and_anything_else_is_a_warning() -> None:
    """absl's severity letter sets the level; a line without that prefix (a traceback,
    another library) is a warning."""
    assert severity("I1206 16:59:56.1 7 x.cc:1] ok") == logging.INFO
    assert severity("E1206 16:59:56.885811    7890 ssl_transport_security.cc:3238] x") == (
        logging.ERROR)
    assert severity("Traceback (most recent call last):") == logging.WARNING


def test_a_partial_line_is_let_out_when_the_writer_pauses() -> None:
    """Bytes without a newline wait only until the writer pauses, then go out as a line."""
    splitter = LineSplitter()
    assert splitter.feed(b"one\ntw") == ["one"]
    assert splitter.waiting
    assert splitter.pause() == ["tw"]
    assert not splitter.waiting and splitter.pause() == []


def test_a_server_that_aborts_still_gets_its_last_words_to_the_log(tmp_path: Path) -> None:
    """The tap is a process, not a thread: what a dying server wrote to fd 2 just before
    abort() still reaches the log (escaped), because the tap drains the pipe to its end;
    photonic's own records go to the real stderr as they are."""
    log = tmp_path / "server.log"
    script = textwrap.dedent("""
        import logging, os
        from photonic.logfmt import configure_logging, event
        from photonic.server.grpc_log_tap import StderrTap
        tap = StderrTap.install("server")
        configure_logging("info", stream=tap.log_stream, component="server")
        event(logging.getLogger("photonic.server"), "server_started")
        os.write(2, b"last words\\ncaller=admin\\n")
        os.abort()
    """)
    with open(log, "wb") as stderr:
        proc = subprocess.run([sys.executable, "-c", script], stderr=stderr, timeout=30,
                              check=False)
    assert proc.returncode != 0
    wait_until(lambda: "caller=admin" in log.read_text(), 10, message="the last words")
    text = log.read_text()
    assert not not_records(text)
    assert "event=server_started" in text
    assert 'logger=stderr msg="last words"' in text
    assert 'logger=stderr msg="caller=admin"' in text
