"""Puts the TLS handshakes gRPC's core refused (another CA, an expired certificate, plaintext)
into the audit log, which no servicer can do: they never become RPCs.

`StderrTap.install` runs before grpc is imported (gRPC reads GRPC_TRACE and GRPC_VERBOSITY once,
at import), turns on the `handshaker` tracer, whose failing records name the peer, and routes
fd 2 through the tap child (`grpc_log_tap`). `HandshakeAuditor` reads the refusals the tap
reports and writes them through the catalog's audit method, coalesced so that a flood of bad
handshakes cannot fill the disk. Only handshakes are touched: the data path never sees the tap.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from photonic.logfmt import event
from photonic.server.grpc_log_tap import Refusal, TapPolicy, peer_host

log = logging.getLogger("photonic.server.handshake_audit")

ACTION = "tls.handshake"
RESULT = "refused"
OVERFLOW_HOST = "*"  # where refusals go once a window's row budget is spent

AuditWrite = Callable[[str, str, str, str, str], None]
"""(actor, action, target, result, detail): the signature of SqliteCatalog.audit."""

# The verbosities that would hide the INFO records the audit reads, and the absl severities
# that the operator would not have seen at each of them.
_HIDDEN_AT = {"WARNING": "I", "ERROR": "IW", "NONE": "IWE"}


def grpc_log_policy(environ: MutableMapping[str, str]) -> TapPolicy:
    """Turns on what the audit needs in environ (the handshaker tracer, INFO records) and
    returns the policy that hides those additions again from the forwarded stderr."""
    trace = environ.get("GRPC_TRACE", "")
    tracers = {t.strip() for t in trace.split(",") if t.strip()}
    traced = bool(tracers & {"handshaker", "all"})
    if not traced:
        environ["GRPC_TRACE"] = f"{trace},handshaker" if trace.strip() else "handshaker"
    hidden = _HIDDEN_AT.get(environ.get("GRPC_VERBOSITY", "").strip().upper(), "")
    if hidden:
        environ["GRPC_VERBOSITY"] = "INFO"
    return TapPolicy(hide_handshaker_trace=not traced, hide_tracer_banner=not tracers,
                     hidden_severities=hidden)


class StderrTap:
    """Owns the process's fd 2 while the server runs: a pipe into the tap child. Restored when
    closed, or at once if the child dies, so that no writer ever blocks on a dead pipe."""

    def __init__(self, proc: subprocess.Popen[bytes], saved_fd: int, refusals_fd: int,
                 stderr_fd: int) -> None:
        self._proc = proc
        self._saved_fd = saved_fd
        self.refusals_fd = refusals_fd
        self._stderr_fd = stderr_fd
        self._lock = threading.Lock()
        self._restored = False
        threading.Thread(target=self._watch, name="photonic-stderr-tap", daemon=True).start()

    @classmethod
    def install(cls, environ: MutableMapping[str, str], stderr_fd: int = 2) -> StderrTap | None:
        """None when grpc is already imported (its tracer could no longer be turned on) or
        the tap cannot be started."""
        if "grpc" in sys.modules:
            return None
        policy = grpc_log_policy(environ)
        pipe_r, pipe_w = os.pipe()
        refusals_r, refusals_w = os.pipe()
        saved = os.dup(stderr_fd)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "photonic.server.grpc_log_tap",
                 f"--refusals-fd={refusals_w}", *policy.to_args()],
                stdin=pipe_r, stdout=saved, stderr=saved, pass_fds=(refusals_w,),
                env=_child_env(environ))
        except OSError:
            for fd in (pipe_w, refusals_r, saved):
                os.close(fd)
            return None  # the server runs as before, only without this audit
        finally:
            os.close(pipe_r)
            os.close(refusals_w)
        sys.stderr.flush()
        os.dup2(pipe_w, stderr_fd)
        os.close(pipe_w)
        tap = cls(proc, saved, refusals_r, stderr_fd)
        atexit.register(tap.close)
        return tap

    def close(self, timeout_s: float = 5.0) -> None:
        """Gives fd 2 back and lets the child drain what is left in the pipe."""
        self._restore()
        with contextlib.suppress(subprocess.TimeoutExpired):
            # A grandchild still holding the pipe keeps the child forwarding; leave it be.
            self._proc.wait(timeout_s)

    def _restore(self) -> bool:
        with self._lock:
            if self._restored:
                return False
            self._restored = True
            with contextlib.suppress(ValueError, OSError):
                sys.stderr.flush()
            os.dup2(self._saved_fd, self._stderr_fd)
            return True

    def _watch(self) -> None:
        code = self._proc.wait()
        if self._restore():
            event(log, "stderr_tap_died", logging.ERROR, exit_code=code,
                  consequence="TLS handshake refusals are no longer audited")


def _child_env(environ: MutableMapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if not k.startswith("GRPC_")}
    root = str(Path(__file__).resolve().parents[2])  # wherever this photonic is imported from
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


@dataclass(frozen=True)
class AuditRow:
    actor: str
    target: str
    detail: str


@dataclass
class _PeerWindow:
    last: Refusal
    written: int = 0
    suppressed: int = 0


class RefusalCoalescer:
    """Within each window, one row per refusal up to rows_per_peer for a peer host and
    rows_per_window in all; the rest are counted and summed up in one row per host when the
    window ends. So a flood writes at most about 2 * rows_per_window rows a window, and its
    memory is bounded the same way (a host is tracked only while the budget has room)."""

    def __init__(self, window_s: float = 60.0, rows_per_peer: int = 5,
                 rows_per_window: int = 50) -> None:
        self._window_s = window_s
        self._per_peer = rows_per_peer
        self._per_window = rows_per_window
        self._started_s: float | None = None
        self._written = 0
        self._hosts: dict[str, _PeerWindow] = {}

    def add(self, refusal: Refusal, now_s: float) -> list[AuditRow]:
        rows = self.due(now_s)
        if self._started_s is None:
            self._started_s = now_s
        host = peer_host(refusal.peer)
        room = self._written < self._per_window
        key = host if host in self._hosts or room else OVERFLOW_HOST
        window = self._hosts.setdefault(key, _PeerWindow(refusal))
        window.last = refusal
        if key != OVERFLOW_HOST and room and window.written < self._per_peer:
            window.written += 1
            self._written += 1
            rows.append(AuditRow(f"tls:{host}", refusal.peer, refusal.reason))
        else:
            window.suppressed += 1
        return rows

    def due(self, now_s: float) -> list[AuditRow]:
        """The summary rows of a window that has ended by now_s."""
        if self._started_s is None or now_s - self._started_s < self._window_s:
            return []
        return self.drain()

    def drain(self) -> list[AuditRow]:
        """Ends the window now: one summary row for each host that had refusals left out."""
        rows = [AuditRow(f"tls:{host}", w.last.peer,
                         f"{w.suppressed} more refused handshakes within {self._window_s:g} s "
                         f"not logged one by one; last: {w.last.reason}")
                for host, w in self._hosts.items() if w.suppressed]
        self._hosts.clear()
        self._written = 0
        self._started_s = None
        return rows


class HandshakeAuditor:
    """Reads the tap's refusals on its own thread (audit writes may wait on SQLite; the tap
    never waits on them) and writes them, coalesced, with `write`."""

    def __init__(self, refusals_fd: int, write: AuditWrite,
                 coalescer: RefusalCoalescer | None = None,
                 clock: Callable[[], float] = time.monotonic, tick_s: float = 0.2) -> None:
        self._fd = refusals_fd
        self._write = write
        self._coalescer = coalescer or RefusalCoalescer()
        self._clock = clock
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="photonic-handshake-audit",
                                        daemon=True)
        self._pending = b""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Writes what is already reported and the open window's summaries, then returns."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        open_ = True
        while open_ and not self._stop.is_set():
            open_ = self._read(self._tick_s)
            self._emit(self._coalescer.due(self._clock()))
        while open_ and self._read(0):
            pass
        self._emit(self._coalescer.drain())

    def _read(self, timeout_s: float) -> bool:
        """Handles whatever the tap reported within timeout_s; False once the tap is gone."""
        ready, _, _ = select.select([self._fd], [], [], timeout_s)
        if not ready:
            return timeout_s > 0
        data = os.read(self._fd, 1 << 16)
        if not data:
            return False
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            refusal = Refusal.from_line(line.decode("utf-8", "replace"))
            if refusal is not None:
                self._emit(self._coalescer.add(refusal, self._clock()))
        return True

    def _emit(self, rows: list[AuditRow]) -> None:
        for row in rows:
            event(log, "tls_handshake_refused", logging.WARNING, caller=row.actor,
                  peer=row.target, reason=row.detail)
            try:
                self._write(row.actor, ACTION, row.target, RESULT, row.detail)
            except Exception:
                log.exception("could not write a TLS handshake refusal to the audit log")
