"""The server's stderr tap: whatever reaches fd 2 from outside photonic's logger (gRPC's C core
above all) is logged as escaped key=value records, never copied through as it came.

gRPC writes text a peer chose into its log unescaped: a client's TLS server name goes out as
`No match found for server name: <SNI>`, newlines and all, before any certificate is checked.
Copied through, that lets anyone who can open a TCP connection write log lines of their
choosing (`caller=admin action=ResolveConflicts`). So the server's fd 2 is a pipe into this
child process, which logs each line it reads as the `msg` of a `logger=stderr` record (the
level taken from gRPC's own prefix, when there is one); photonic's logger writes to the real
stderr directly. Nothing here is parsed into a fact: the text is the peer's as much as gRPC's.

It runs as a process, not a thread, so that a server that aborts or is killed still gets its
last words to the log: this process drains the pipe to EOF.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from photonic.errors import PhotonicError
from photonic.logfmt import configure_logging, event

log = logging.getLogger("photonic.server.grpc_log_tap")
LOGGER_NAME = "stderr"

# absl's prefix, as gRPC core writes it: `E1121 19:14:59.146417   29773 handshaker.cc:155] `.
_ABSL_PREFIX = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w.+-]+:\d+\]")
_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}
PARTIAL_LINE_WAIT_S = 0.05
MAX_RECORD_CHARS = 2048  # a longer line is logged in several records, none of them huge


def severity(line: str) -> int:
    """The level of one line: gRPC's own, else WARNING (a traceback, another library's
    complaint: nothing a healthy server writes there). A peer can fake the prefix, and so
    choose the level of the record that quotes it, never a record's shape."""
    found = _ABSL_PREFIX.match(line)
    return _LEVELS[found.group(1)] if found else logging.WARNING


class LineSplitter:
    """Bytes in, whole lines out; a partial line is let out when the writer pauses, so
    nothing waits in here for a newline that may never come. Pure: tested without pipes."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[str]:
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        return [piece for raw in lines for piece in _pieces(raw)]

    def pause(self) -> list[str]:
        rest, self._buffer = self._buffer, b""
        return _pieces(rest) if rest else []

    @property
    def waiting(self) -> bool:
        return bool(self._buffer)


def _pieces(raw: bytes) -> list[str]:
    text = raw.decode("utf-8", "backslashreplace")
    return [text[i:i + MAX_RECORD_CHARS] for i in range(0, len(text), MAX_RECORD_CHARS)] or [""]


def run(in_fd: int, out: TextIO, component: str) -> None:
    """Logs every line read from in_fd to out until every writer of in_fd has closed it."""
    configure_logging("debug", stream=out, component=component)
    record = logging.getLogger(LOGGER_NAME)
    splitter = LineSplitter()
    poller = select.poll()
    poller.register(in_fd, select.POLLIN)
    while True:
        timeout_ms = int(PARTIAL_LINE_WAIT_S * 1000) if splitter.waiting else -1
        data = os.read(in_fd, 1 << 16) if poller.poll(timeout_ms) else None
        lines = splitter.pause() if not data else splitter.feed(data)
        for line in lines:
            record.log(severity(line), line)
        if data == b"":
            return


def _line_stream(fd: int) -> TextIO:
    """A text stream on fd that hands each record to the OS in one write."""
    return io.TextIOWrapper(io.BufferedWriter(io.FileIO(fd, "w", closefd=False)),
                            encoding="utf-8", errors="backslashreplace", line_buffering=True)


def main(argv: Sequence[str] | None = None) -> int:
    # The server's own shutdown (Ctrl-C, systemd's SIGTERM to the whole unit) must not stop
    # the tap before the server has written its last lines: it ends at EOF instead.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    p = argparse.ArgumentParser(prog="grpc_log_tap")
    p.add_argument("--component", default="server")
    args = p.parse_args(argv)
    run(sys.stdin.fileno(), _line_stream(sys.stdout.fileno()), args.component)
    return 0


class StderrTap:
    """Owns the process's fd 2 while the server runs: a pipe into the tap child. If the child
    dies, fd 2 goes to /dev/null rather than back to the log: losing gRPC's lines is better
    than letting a peer's text through unescaped."""

    def __init__(self, proc: subprocess.Popen[bytes], saved_fd: int, stderr_fd: int) -> None:
        self._proc = proc
        self._saved_fd = saved_fd
        self._stderr_fd = stderr_fd
        self.log_stream = _line_stream(saved_fd)  # the real stderr, for photonic's records
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._watch, name="photonic-stderr-tap", daemon=True).start()

    @classmethod
    def install(cls, component: str = "server", stderr_fd: int = 2) -> StderrTap:
        """Starts the child and points stderr_fd at it; PhotonicError when it cannot start
        (the server does not run with a log a peer can write into)."""
        pipe_r, pipe_w = os.pipe()
        saved = os.dup(stderr_fd)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "photonic.server.grpc_log_tap", f"--component={component}"],
                stdin=pipe_r, stdout=saved, stderr=saved)
        except OSError as exc:
            for fd in (pipe_w, saved):
                os.close(fd)
            raise PhotonicError(f"cannot start the stderr tap ({exc}); the server does not "
                                f"run without it") from None
        finally:
            os.close(pipe_r)
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()
        os.dup2(pipe_w, stderr_fd)
        os.close(pipe_w)
        return cls(proc, saved, stderr_fd)

    def close(self, timeout_s: float = 5.0) -> None:
        """Gives fd 2 back and lets the child drain what is left in the pipe."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(ValueError, OSError):
                sys.stderr.flush()
            os.dup2(self._saved_fd, self._stderr_fd)
        with contextlib.suppress(subprocess.TimeoutExpired):
            # A grandchild still holding the pipe keeps the child logging; leave it be.
            self._proc.wait(timeout_s)

    def _watch(self) -> None:
        code = self._proc.wait()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stderr_fd)
            os.close(null)
        event(log, "stderr_tap_died", logging.ERROR, exit_code=code,
              consequence="gRPC's own log lines are discarded until the server restarts")


if __name__ == "__main__":
    sys.exit(main())
