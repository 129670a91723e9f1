"""gRPC channel and server options shared by every photonic endpoint, tuned for bulk transfer."""

from __future__ import annotations

from typing import Final

MAX_CHUNK_BYTES: Final = 4 << 20
"""The largest raw chunk a peer may send; the wire frame cap leaves room for LZ4 overhead."""

MAX_MESSAGE_BYTES: Final = MAX_CHUNK_BYTES + (1 << 20)

MAX_CHUNKS_PER_RUN: Final = 256
"""The most chunks one SyncBatch message may carry; their raw sizes add up to at most
MAX_CHUNK_BYTES, so a run is never larger than one full chunk plus its chunks' headers."""

# Small default HTTP/2 windows starve a bulk upload on any link with latency; BDP probing lets
# gRPC grow the window to what the path actually carries.
_COMMON: Final[list[tuple[str, int | str]]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.http2.bdp_probe", 1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]

DEFAULT_MAX_CONNECTION_AGE_S: Final = 3600.0
DEFAULT_MAX_CONNECTION_AGE_GRACE_S: Final = 60.0


def server_options(max_connection_age_s: float = DEFAULT_MAX_CONNECTION_AGE_S,
                   max_connection_age_grace_s: float = DEFAULT_MAX_CONNECTION_AGE_GRACE_S
                   ) -> list[tuple[str, int | str]]:
    """The server's options. A connection older than max_connection_age_s is told to go away
    (clients reconnect on their own), and its streams are cut max_connection_age_grace_s
    later: no connection, or what it was allowed when it began, lives forever.

    No SO_REUSEPORT (gRPC sets it by default on Linux): with it, a second server started on
    an address the first still listens on binds too, and the kernel then splits new
    connections between the two (agents syncing to whichever storage answered); without it,
    the second fails to start, saying the address is in use."""
    return [
        *_COMMON,
        ("grpc.so_reuseport", 0),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.max_connection_age_ms", int(max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(max_connection_age_grace_s * 1000)),
    ]


SERVER_OPTIONS: Final[list[tuple[str, int | str]]] = server_options()

CHANNEL_OPTIONS: Final[list[tuple[str, int | str]]] = [
    *_COMMON,
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 10_000),
    ("grpc.enable_retries", 0),
]

CORRELATION_METADATA_KEY: Final = "x-photonic-correlation-id"

REPLY_RUNS_METADATA_KEY: Final = "x-photonic-reply-runs"
"""Sent as "1" by agents that read SyncServerMessage.replies; older agents get one per message."""

MAX_REPLIES_PER_RUN: Final = 256
MAX_REPLY_RUN_BYTES: Final = 1 << 20
"""A run of replies stays far inside MAX_MESSAGE_BYTES; a reply alone is never held back."""
