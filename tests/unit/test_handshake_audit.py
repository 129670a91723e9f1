"""The stderr tap's parsing of gRPC core's log (recorded from grpcio 1.85.1), its forwarding
through real pipes, the coalescing of refusals into audit rows, and gRPC's log settings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from photonic.server.grpc_log_tap import (
    GrpcLogFilter,
    Refusal,
    TapPolicy,
    describe_error,
    peer_address,
    peer_host,
    run,
)
from photonic.server.handshake_audit import (
    ACTION,
    RESULT,
    AuditRow,
    HandshakeAuditor,
    RefusalCoalescer,
    grpc_log_policy,
)
from tests.support.daemons import wait_until

SSL_LINE = ("I1121 19:14:59.146372   29773 ssl_transport_security.cc:2563] Handshake failed with "
            "error SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:"
            "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate")
SERVER_ARGS = ("{endpoint=0x7fbdac001c40, args={grpc.http2.bdp_probe=1, "
               "grpc.internal.endpoint_local_address=ipv4:127.0.0.1:39687, "
               "grpc.internal.endpoint_peer_address=ipv4:127.0.0.1:37256, "
               "grpc.internal.server_credentials=0x5637ffe688a0}, read_buffer.Length()=0, "
               "exit_early=0}")
FAILED_STEP = [
    "I1121 19:14:59.146417   29773 handshaker.cc:155] CallNextHandshakerLocked: error=UNKNOWN: "
    "Ssl handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:"
    "OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate: OK",
    "=== Source Location Trace: === ",
    "src/core/util/status_helper.cc:68",
    " shutdown=false index=2, args=" + SERVER_ARGS,
]
MANAGER_FAILED = [
    "I1121 19:14:59.146445   29773 channel_trace.h:396] handshake manager 0x7fbdac0020e0: "
    "Failed with error: UNKNOWN: Ssl handshake failed (TSI_PROTOCOL_FAILURE): ...: OK",
    "=== Source Location Trace: === ",
    "src/core/util/status_helper.cc:68",
    "",
]
STEP_OK = ("I1121 19:14:59.141530   29774 handshaker.cc:155] CallNextHandshakerLocked: error=OK "
           "shutdown=false index=1, args=" + SERVER_ARGS)
PHOTONIC_LINE = "ts=2026-11-21T19:14:59.107Z level=info logger=photonic.server msg=server_started"


def _feed(lines: list[str], policy: TapPolicy | None = None) -> tuple[list[str], list[Refusal]]:
    log_filter = GrpcLogFilter(policy or TapPolicy())
    forwarded: list[str] = []
    refusals: list[Refusal] = []
    for line in lines:
        forward, found = log_filter.line(line)
        if forward:
            forwarded.append(line)
        refusals += found
    return forwarded, refusals + log_filter.idle()


def test_a_refused_handshake_yields_the_peer_and_reason_and_hides_only_the_trace() -> None:
    """A server-side failed handshake step becomes one refusal naming the peer; gRPC's own
    INFO line and photonic's log stay, the trace records photonic turned on are hidden."""
    forwarded, refusals = _feed([PHOTONIC_LINE, STEP_OK, SSL_LINE, *FAILED_STEP,
                                 *MANAGER_FAILED, PHOTONIC_LINE])
    assert refusals == [Refusal("127.0.0.1:37256",
                                "certificate verify failed: unable to get local issuer "
                                "certificate")]
    assert forwarded == [PHOTONIC_LINE, SSL_LINE, PHOTONIC_LINE]


def test_output_that_is_not_grpc_trace_is_never_hidden() -> None:
    """A traceback (or any line not shaped like a trace continuation) right after a hidden
    trace record is forwarded: the tap never swallows someone else's output."""
    traceback = ["Traceback (most recent call last):", '  File "x.py", line 1, in <module>',
                 "ValueError: boom"]
    forwarded, refusals = _feed([STEP_OK, *traceback, FAILED_STEP[0], *traceback])
    assert forwarded == traceback + traceback
    assert refusals == []  # the failed step lost its tail, so its peer is unknown


def test_client_side_and_peer_went_away_failures_are_not_refusals() -> None:
    """A handshake this process made as a client, and a peer that closed the socket before
    sending anything, are not the server refusing anyone."""
    client_args = SERVER_ARGS.replace("grpc.internal.server_credentials",
                                      "grpc.internal.channel_credentials")
    client = [*FAILED_STEP[:3], " shutdown=false index=2, args=" + client_args]
    closed = ["I1121 19:15:48.085314   31129 handshaker.cc:155] CallNextHandshakerLocked: "
              "error=UNAVAILABLE: Handshake read failed (Socket closed)",
              "=== Source Location Trace: === ", "src/core/util/status_helper.cc:124",
              " shutdown=false index=2, args=" + SERVER_ARGS]
    assert _feed(client + closed) == ([], [])


def test_the_operator_s_own_trace_and_verbosity_choices_are_respected() -> None:
    """With GRPC_TRACE=handshaker set by the operator the trace is forwarded (and still
    parsed); INFO records are hidden from an operator who asked for GRPC_VERBOSITY=ERROR."""
    traced = TapPolicy(hide_handshaker_trace=False, hide_tracer_banner=False)
    forwarded, refusals = _feed(FAILED_STEP, traced)
    assert forwarded == FAILED_STEP and len(refusals) == 1
    error_line = SSL_LINE.replace("I1121", "E1121", 1)
    quiet = TapPolicy(hidden_severities="IW")
    assert _feed([SSL_LINE, error_line, *FAILED_STEP], quiet)[0] == [error_line]


@pytest.mark.parametrize(("error", "reason"), [
    ("UNKNOWN: Ssl handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL "
     "routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: certificate has expired: OK",
     "certificate verify failed: certificate has expired"),
    ("UNKNOWN: Ssl handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:100000f7:SSL "
     "routines:OPENSSL_internal:WRONG_VERSION_NUMBER: Invalid certificate verification "
     "context: OK", "not TLS (plaintext or another protocol)"),
    ("UNKNOWN: Ssl handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:100000c0:SSL "
     "routines:OPENSSL_internal:PEER_DID_NOT_RETURN_A_CERTIFICATE: Invalid certificate "
     "verification context: OK", "no client certificate"),
    ("UNKNOWN: Ssl handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:10000410:SSL "
     "routines:OPENSSL_internal:SSLV3_ALERT_HANDSHAKE_FAILURE: Invalid certificate "
     "verification context: OK", "sslv3 alert handshake failure"),
    ("UNKNOWN: Cannot check peer: missing selected ALPN property.",
     "Cannot check peer: missing selected ALPN property"),
])
def test_reasons_are_short_and_stable(error: str, reason: str) -> None:
    """gRPC core's status text becomes a short reason an operator can read and grep."""
    assert describe_error(error) == reason


def test_peer_addresses_lose_the_uri_scheme_and_hosts_lose_the_port() -> None:
    """ipv4 and (percent-encoded) ipv6 peers read as addresses; the host drops the port."""
    assert peer_address("ipv4:127.0.0.1:37256") == "127.0.0.1:37256"
    assert peer_address("ipv6:%5B::1%5D:54034") == "[::1]:54034"
    assert peer_host("127.0.0.1:37256") == "127.0.0.1"
    assert peer_host("[::1]:54034") == "[::1]"
    assert peer_host("unix:/run/photonic.sock") == "unix:/run/photonic.sock"


def test_refusal_lines_survive_tabs_and_newlines_in_a_reason() -> None:
    """The tap's one-line-per-refusal format cannot be split by what gRPC writes."""
    refusal = Refusal("1.2.3.4:5", "odd\treason\nhere")
    assert Refusal.from_line(refusal.to_line().decode()) == Refusal("1.2.3.4:5", "odd reason here")
    assert Refusal.from_line("garbage") is None


def test_a_flood_from_one_host_is_capped_and_counted_per_window() -> None:
    """Past rows_per_peer a host's refusals are counted, and the count is one row when the
    window ends; the next window starts afresh."""
    coalescer = RefusalCoalescer(window_s=60, rows_per_peer=2, rows_per_window=10)
    rows = [row for i in range(5) for row in coalescer.add(Refusal(f"10.0.0.1:{i}", "r"), i)]
    assert rows == [AuditRow("tls:10.0.0.1", "10.0.0.1:0", "r"),
                    AuditRow("tls:10.0.0.1", "10.0.0.1:1", "r")]
    assert coalescer.due(59) == []
    summary = coalescer.due(60)
    assert [(r.actor, r.target) for r in summary] == [("tls:10.0.0.1", "10.0.0.1:4")]
    assert summary[0].detail.startswith("3 more refused handshakes within 60 s")
    assert coalescer.add(Refusal("10.0.0.1:9", "r"), 61) == [
        AuditRow("tls:10.0.0.1", "10.0.0.1:9", "r")]


def test_a_flood_from_many_hosts_is_bounded_by_the_window_budget() -> None:
    """Once a window's row budget is spent, new hosts share one `tls:*` count, so the rows
    (and the memory) per window stay bounded whatever the number of sources."""
    coalescer = RefusalCoalescer(window_s=60, rows_per_peer=5, rows_per_window=3)
    rows = [row for i in range(100) for row in coalescer.add(Refusal(f"10.0.{i}.1:1", "r"), 1)]
    assert len(rows) == 3
    summary = coalescer.drain()
    assert [(r.actor, r.detail.split(" ")[0]) for r in summary] == [("tls:*", "97")]


def test_grpc_logging_is_turned_on_for_the_audit_and_hidden_again() -> None:
    """The handshaker tracer and INFO records are enabled; the policy hides from the
    forwarded log exactly what the operator did not ask for."""
    env: dict[str, str] = {}
    assert grpc_log_policy(env) == TapPolicy(True, True, "")
    assert env == {"GRPC_TRACE": "handshaker"}
    env = {"GRPC_TRACE": "tcp", "GRPC_VERBOSITY": "error"}
    assert grpc_log_policy(env) == TapPolicy(True, False, "IW")
    assert env == {"GRPC_TRACE": "tcp,handshaker", "GRPC_VERBOSITY": "INFO"}
    env = {"GRPC_TRACE": "handshaker,http", "GRPC_VERBOSITY": "DEBUG"}
    assert grpc_log_policy(env) == TapPolicy(False, False, "")
    assert env == {"GRPC_TRACE": "handshaker,http", "GRPC_VERBOSITY": "DEBUG"}


def test_the_tap_forwards_every_byte_and_reports_refusals_through_real_pipes() -> None:
    """Through OS pipes: visible lines arrive byte for byte (a last line without a newline
    too), hidden trace does not, and the refusal arrives on the refusals pipe."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    ref_r, ref_w = os.pipe()
    text = "\n".join([PHOTONIC_LINE, SSL_LINE, *FAILED_STEP, *MANAGER_FAILED, "no newline"])
    os.write(in_w, text.encode())
    os.close(in_w)
    run(in_r, out_w, ref_w, TapPolicy())
    for fd in (in_r, out_w, ref_w):
        os.close(fd)
    with os.fdopen(out_r, "rb") as out, os.fdopen(ref_r, "rb") as ref:
        assert out.read().decode() == f"{PHOTONIC_LINE}\n{SSL_LINE}\nno newline"
        assert Refusal.from_line(ref.read().decode()) == Refusal(
            "127.0.0.1:37256", "certificate verify failed: unable to get local issuer certificate")


def test_the_auditor_writes_reported_refusals_with_the_audit_signature() -> None:
    """Refusals read from the tap's pipe are written as (actor, tls.handshake, peer,
    refused, reason); stopping writes the open window's summary too."""
    read_fd, write_fd = os.pipe()
    written: list[tuple[str, str, str, str, str]] = []
    auditor = HandshakeAuditor(read_fd, lambda *row: written.append(row),
                               RefusalCoalescer(rows_per_peer=1), tick_s=0.05)
    auditor.start()
    for port in (1, 2):
        os.write(write_fd, Refusal(f"127.0.0.1:{port}", "no client certificate").to_line())
    wait_until(lambda: written, 10, message="the first audit row")
    auditor.stop()
    os.close(write_fd)
    os.close(read_fd)
    assert written[0] == ("tls:127.0.0.1", ACTION, "127.0.0.1:1", RESULT,
                          "no client certificate")
    assert len(written) == 2 and written[1][4].startswith("1 more refused handshakes")


def test_a_server_that_aborts_still_gets_its_last_words_to_the_log(tmp_path: Path) -> None:
    """The tap is a process, not a thread: what a dying server wrote to stderr just before
    abort() still reaches the log, because the tap drains the pipe to its end."""
    log = tmp_path / "server.log"
    script = textwrap.dedent("""
        import os
        from photonic.server.handshake_audit import StderrTap
        assert StderrTap.install(os.environ) is not None
        os.write(2, b"last words\\n")
        os.abort()
    """)
    with open(log, "wb") as stderr:
        proc = subprocess.run([sys.executable, "-c", script], stderr=stderr, timeout=30,
                              check=False)
    assert proc.returncode != 0
    wait_until(lambda: "last words" in log.read_text(), 10, message="the last words in the log")


def test_a_line_longer_than_the_cap_goes_out_whole_and_unparsed() -> None:
    """A megabyte without a newline is forwarded byte for byte (in pieces, unfiltered), and
    the grpc record after it is parsed as usual."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    ref_r, ref_w = os.pipe()
    long_line = b"x" * (1 << 20) + b"\n"
    payload = long_line + "\n".join([*FAILED_STEP, ""]).encode()
    received: list[bytes] = []

    def write() -> None:
        with os.fdopen(in_w, "wb") as pipe:
            pipe.write(payload)

    def read() -> None:
        with os.fdopen(out_r, "rb") as pipe:
            received.append(pipe.read())

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    run(in_r, out_w, ref_w, TapPolicy())
    for fd in (in_r, out_w, ref_w):
        os.close(fd)
    for thread in threads:
        thread.join(30)
    assert received == [long_line]
    with os.fdopen(ref_r, "rb") as ref:
        assert Refusal.from_line(ref.read().decode()) is not None
