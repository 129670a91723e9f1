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

SERVER_OPTIONS: Final[list[tuple[str, int | str]]] = [
    *_COMMON,
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.max_connection_age_grace_ms", 30_000),
]

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
