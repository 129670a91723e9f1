"""The server's stderr tap: a child process that forwards everything the server writes to stderr
and picks out the TLS handshakes gRPC's core refused, which no Python code ever sees.

gRPC refuses a wrong-CA, expired or plaintext client inside its C core, and the only trace of
that is its own log: with the `handshaker` tracer on, the failing record carries both the reason
and `endpoint_peer_address`. The server's fd 2 is a pipe into this process, which copies every
byte to the real stderr (hiding only the trace records photonic itself turned on, so operators
see what they asked for) and writes one `R<TAB>peer<TAB>reason` line per refusal to a second
pipe for the server to audit. It runs as a process, not a thread, so that a server that aborts
or is killed still gets its last words to the log: this process drains the pipe to EOF.

Imports nothing but the standard library: it starts before grpc may be imported.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import select
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

# absl's prefix, as gRPC core writes it: `I1121 19:14:59.146417   29773 handshaker.cc:155] `.
_HEADER = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ ([\w.+-]+):\d+\] ?(.*)")
# The only shapes that follow a handshaker record on later lines (a status's source trace, the
# tail of the message, the blank line after a trace); anything else is someone else's output
# and is always forwarded.
_CONTINUATION = re.compile(r"=== Source Location Trace: ===.*|\S+\.(?:cc|h):\d+|\s+shutdown=.*|")
_PEER = re.compile(r"grpc\.internal\.endpoint_peer_address=([^,}\s]+)")
_SERVER_SIDE = "grpc.internal.server_credentials="
_FAILED_STEP = "CallNextHandshakerLocked: error="
# A refusal by the server's TLS policy; a peer that just went away ("Socket closed") is not one.
_REFUSALS = ("Ssl handshake failed", "Cannot check peer")
_OPENSSL = re.compile(r"OPENSSL_internal:([A-Z0-9_]+)(?::\s*(.*))?")
_REASONS = {
    "WRONG_VERSION_NUMBER": "not TLS (plaintext or another protocol)",
    "HTTP_REQUEST": "not TLS (a plain HTTP request)",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no client certificate",
}
_NOISE_DETAIL = "Invalid certificate verification context"  # said even when nothing was verified
PARTIAL_LINE_WAIT_S = 0.05
MAX_LINE_BYTES = 1 << 16  # a longer run without a newline goes out as it is, unparsed
_MAX_REASON_CHARS = 512  # keeps a report under PIPE_BUF, so it is written whole or not at all


@dataclass(frozen=True)
class Refusal:
    """One TLS handshake gRPC's core refused: who connected and why it was turned away."""

    peer: str  # "127.0.0.1:45558", "[::1]:5000", or the raw address when it has another form
    reason: str

    def to_line(self) -> bytes:
        clean = [re.sub(r"[\t\r\n]", " ", s)[:_MAX_REASON_CHARS] for s in (self.peer, self.reason)]
        return ("R\t" + "\t".join(clean) + "\n").encode("utf-8")

    @staticmethod
    def from_line(line: str) -> Refusal | None:
        parts = line.rstrip("\n").split("\t")
        return Refusal(parts[1], parts[2]) if len(parts) == 3 and parts[0] == "R" else None


@dataclass(frozen=True)
class TapPolicy:
    """What the operator would have seen without photonic's additions to gRPC's log settings."""

    hide_handshaker_trace: bool = True
    hide_tracer_banner: bool = True
    hidden_severities: str = ""  # absl letters ("I", "W") below the operator's GRPC_VERBOSITY

    def to_args(self) -> list[str]:
        return [f"--hide-trace={int(self.hide_handshaker_trace)}",
                f"--hide-banner={int(self.hide_tracer_banner)}",
                f"--hide-severities={self.hidden_severities}"]


@dataclass
class _Record:
    hidden: bool
    failed_step: str = ""  # the error text of a failed handshake step, when this is one
    tail: list[str] = field(default_factory=list)


class GrpcLogFilter:
    """Line by line: what to forward to the real stderr, and which lines complete a refusal.
    Pure (no I/O), so the parsing is tested on recorded gRPC output."""

    def __init__(self, policy: TapPolicy) -> None:
        self._policy = policy
        self._record: _Record | None = None

    def line(self, text: str) -> tuple[bool, list[Refusal]]:
        """(forward this line?, refusals completed by it). `text` has no trailing newline."""
        header = _HEADER.fullmatch(text)
        if header is not None:
            done = self.idle()
            severity, source, message = header.groups()
            failed = message[len(_FAILED_STEP):] if (
                source == "handshaker.cc" and message.startswith(_FAILED_STEP)
                and not message.startswith(_FAILED_STEP + "OK")) else ""
            self._record = _Record(self._hides(severity, source, message), failed)
            return not self._record.hidden, done
        record = self._record
        if record is None or not _CONTINUATION.fullmatch(text):
            return True, self.idle()
        if record.failed_step:
            record.tail.append(text)
            if _PEER.search(text):  # the last line of a failed step's record
                return not record.hidden, self.idle()
        return not record.hidden, []

    def idle(self) -> list[Refusal]:
        """Ends the record in progress (nothing more came); returns its refusal, if it was one."""
        record, self._record = self._record, None
        if record is None or not record.failed_step:
            return []
        refusal = _refusal(record.failed_step, "\n".join(record.tail))
        return [refusal] if refusal is not None else []

    def _hides(self, severity: str, source: str, message: str) -> bool:
        if severity in self._policy.hidden_severities:
            return True
        if source == "trace.cc" and message.startswith("gRPC Tracers:"):
            return self._policy.hide_tracer_banner
        is_trace = source == "handshaker.cc" or (
            source == "channel_trace.h" and message.startswith("handshake manager "))
        return is_trace and severity == "I" and self._policy.hide_handshaker_trace


def _refusal(error: str, tail: str) -> Refusal | None:
    peer = _PEER.search(tail)
    if peer is None or _SERVER_SIDE not in tail or not any(r in error for r in _REFUSALS):
        return None
    return Refusal(peer_address(peer.group(1)), describe_error(error))


def peer_address(uri: str) -> str:
    """`ipv4:127.0.0.1:5000` -> `127.0.0.1:5000`; `ipv6:%5B::1%5D:5000` -> `[::1]:5000`."""
    text = unquote(uri)
    for scheme in ("ipv4:", "ipv6:"):
        if text.startswith(scheme):
            return text[len(scheme):]
    return text


def peer_host(address: str) -> str:
    """The host part of a peer address (ports change with every connection)."""
    if address.startswith("["):
        return address.split("]", 1)[0] + "]"
    host, sep, port = address.rpartition(":")
    return host if sep and port.isdigit() and host else address


def describe_error(error: str) -> str:
    """A short, stable reason from gRPC core's status text for a failed handshake step."""
    text = error.strip().removesuffix(": OK")
    found = _OPENSSL.search(text)
    if found is None:  # e.g. "UNKNOWN: Cannot check peer: missing selected ALPN property."
        status, sep, rest = text.partition(": ")
        return (rest if sep and status.isupper() else text).rstrip(".")
    code, detail = found.group(1), (found.group(2) or "").strip()
    if code in _REASONS:
        return _REASONS[code]
    if code == "CERTIFICATE_VERIFY_FAILED":
        return f"certificate verify failed: {detail}" if detail else "certificate verify failed"
    words = code.lower().replace("_", " ")
    return f"{words}: {detail}" if detail and detail != _NOISE_DETAIL else words


# --- the child process ----------------------------------------------------------------------


class _Forwarder:
    """Copies lines to the real stderr; reports refusals without ever blocking on the server."""

    def __init__(self, out_fd: int, refusals_fd: int, policy: TapPolicy) -> None:
        self._out = out_fd
        self._refusals: int | None = refusals_fd
        self._filter = GrpcLogFilter(policy)
        self._buffer = b""
        self._mid_line = False  # part of this line went out unfiltered after a pause

    def feed(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            if self._mid_line:
                self._mid_line = False
                self._write(raw + b"\n")
                continue
            forward, refusals = self._filter.line(raw.decode("utf-8", "replace"))
            if forward:
                self._write(raw + b"\n")
            self._report(refusals)
        if len(self._buffer) > MAX_LINE_BYTES:
            self.pause()

    def pause(self) -> None:
        """Nothing arrived for a moment: finish the record, let a partial line through."""
        self._report(self._filter.idle())
        if self._buffer:
            self._write(self._buffer)
            self._buffer, self._mid_line = b"", True

    @property
    def waiting(self) -> bool:
        return bool(self._buffer)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._out, view):]
            except OSError:
                return  # the real stderr is gone: keep draining so the server never blocks

    def _report(self, refusals: Sequence[Refusal]) -> None:
        for refusal in refusals:
            if self._refusals is None:
                return
            try:
                os.write(self._refusals, refusal.to_line())
            except BlockingIOError:
                pass  # the server is not reading right now; losing a refusal beats stalling
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.EBADF):
                    self._refusals = None  # the server is gone; keep forwarding its stderr


def run(in_fd: int, out_fd: int, refusals_fd: int, policy: TapPolicy) -> None:
    """Forwards in_fd to out_fd until every writer of in_fd has closed it."""
    os.set_blocking(refusals_fd, False)
    forwarder = _Forwarder(out_fd, refusals_fd, policy)
    poller = select.poll()
    poller.register(in_fd, select.POLLIN)
    while True:
        timeout_ms = int(PARTIAL_LINE_WAIT_S * 1000) if forwarder.waiting else 200
        if not poller.poll(timeout_ms):
            forwarder.pause()
            continue
        data = os.read(in_fd, 1 << 16)
        if not data:
            forwarder.pause()
            return
        forwarder.feed(data)


def main(argv: Sequence[str] | None = None) -> int:
    # The server's own shutdown (Ctrl-C, systemd's SIGTERM to the whole unit) must not stop
    # the tap before the server has written its last lines: it ends at EOF instead.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    p = argparse.ArgumentParser(prog="grpc_log_tap")
    p.add_argument("--refusals-fd", type=int, required=True)
    p.add_argument("--hide-trace", type=int, default=1)
    p.add_argument("--hide-banner", type=int, default=1)
    p.add_argument("--hide-severities", default="")
    args = p.parse_args(argv)
    policy = TapPolicy(bool(args.hide_trace), bool(args.hide_banner), args.hide_severities)
    run(sys.stdin.fileno(), sys.stdout.fileno(), args.refusals_fd, policy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
