"""The rows of the benchmark table: which figure, against which peer, and the issue's target."""

from __future__ import annotations

from collections.abc import Sequence

from bench.report import FigureSpec, Target, TargetKind
from bench.symmetric import MODES, SIDES, Mode, figure_key

SYNCTHING = "syncthing"
RSYNC_SSH = "rsync-ssh-fsync"
RSYNC_DAEMON = "rsync-daemon"
RAW_GRPC = "raw-grpc"
PEERS = (SYNCTHING, RSYNC_SSH, RSYNC_DAEMON, RAW_GRPC)


def _at_least_x(value: float) -> Target:
    return Target(TargetKind.RATIO_AT_LEAST, value)


def _at_most(value: float) -> Target:
    return Target(TargetKind.AT_MOST, value)


def _at_most_x(value: float) -> Target:
    return Target(TargetKind.RATIO_AT_MOST, value)


# Issue 16: the bars are warm figures, same run (cold is reported beside them, no bar).
_THROUGHPUT_TARGETS: dict[tuple[str, str, Mode, str], Target] = {
    ("large", "mbps", Mode.WARM, SYNCTHING): _at_least_x(1.2),
    ("large", "mbps", Mode.WARM, RAW_GRPC): _at_least_x(1.0),
    ("large", "mbps", Mode.WARM, RSYNC_SSH): _at_least_x(1.0),
    ("small", "files_per_s", Mode.WARM, SYNCTHING): _at_least_x(1.0),
    ("small", "files_per_s", Mode.WARM, RSYNC_SSH): _at_least_x(1.0),
    # A working photographer's day: warm and cold alike.
    **{("shoot", "mbps", mode, peer): _at_least_x(x)
       for mode in MODES for peer, x in ((SYNCTHING, 1.2), (RSYNC_SSH, 1.0))},
}
CPU_SETS = ("large", "small", "shoot")
"""Sets whose per-side CPU gets table rows (the JSON has every set's)."""
_SIDE_NAMES = {"sender": "agent (sender)", "receiver": "server (receiver)"}


def sync_figure_specs(counts: dict[str, int], sync_sets: Sequence[str]) -> list[FigureSpec]:
    """The warm and cold first syncs of every set against every peer, then each side's CPU."""
    specs: list[FigureSpec] = []
    for name in sync_sets:
        metrics = ("files_per_s", "mbps") if name == "small" else ("mbps", "files_per_s")
        label = f"{name} set ({counts.get(name, 0):,} files)"
        for mode in MODES:
            for metric in metrics:
                unit = "MB/s" if metric == "mbps" else "files/s"
                specs += [
                    FigureSpec(
                        f"first sync {mode}, {label}", unit, figure_key(name, mode, metric),
                        peer, _THROUGHPUT_TARGETS.get((name, metric, mode, peer)),
                    )
                    for peer in PEERS
                ]
    for name in (n for n in CPU_SETS if n in sync_sets):
        for mode in MODES:
            for side in SIDES:
                for metric, unit in (("cpu_per_gb", "CPU-s/GB"),
                                     ("cpu_per_kphotos", "CPU-s/1,000 photos")):
                    target = _at_most_x(0.7) if mode is Mode.WARM else None
                    specs += [
                        FigureSpec(
                            f"{_SIDE_NAMES[side]} CPU, {mode} first sync, {name} set", unit,
                            figure_key(name, mode, f"{metric}.{side}"), peer,
                            target if peer == SYNCTHING else None,
                        )
                        for peer in (SYNCTHING, RSYNC_SSH, RSYNC_DAEMON)
                    ]
    return specs


def figure_specs(
    counts: dict[str, int],
    sync_sets: Sequence[str] = ("large", "small", "raw", "tiff", "shoot"),
) -> list[FigureSpec]:
    """All rows, in the order the table prints them; counts name each set's size in labels."""
    specs = sync_figure_specs(counts, sync_sets)
    small = f"{counts.get('small', 0):,}"
    rsyncs_and_syncthing = (SYNCTHING, RSYNC_SSH, RSYNC_DAEMON)
    for peer in rsyncs_and_syncthing:
        specs.append(
            FigureSpec(
                f"no-change re-sync after restart, small set ({small} files)",
                "s",
                "small.resync.s",
                peer,
                _at_most(0.5),
            )
        )
    for peer in rsyncs_and_syncthing:
        specs.append(
            FigureSpec(
                "no-change re-sync, bytes sent", "bytes", "small.resync.bytes", peer, _at_most(0)
            )
        )
    for peer in rsyncs_and_syncthing:
        specs.append(FigureSpec("incremental sync of 10 new photos", "s", "incremental.s", peer))
    specs += [
        FigureSpec("new photo -> durable commit, p50", "s", "latency.p50", None, _at_most(0.5)),
        FigureSpec("new photo -> durable commit, p95", "s", "latency.p95", None, _at_most(1.5)),
        FigureSpec(
            "second agent holding the large set, bytes sent", "bytes", "second_agent.bytes", None
        ),
        FigureSpec("second agent holding the large set", "s", "second_agent.s", None),
    ]
    specs += [
        FigureSpec(
            "agent peak RSS, large cold first sync",
            "MB",
            "large.rss_mb.sender",
            SYNCTHING,
            _at_most(150),
        ),
        FigureSpec(
            "server peak RSS, large cold first sync", "MB", "large.rss_mb.receiver", SYNCTHING
        ),
    ]
    if "shoot" in sync_sets:
        specs += [
            FigureSpec("agent peak RSS, shoot cold first sync", "MB", "shoot.rss_mb.sender",
                       SYNCTHING, _at_most(150)),
            FigureSpec("server peak RSS, shoot cold first sync", "MB", "shoot.rss_mb.receiver",
                       SYNCTHING, _at_most(250)),
        ]
    return specs


def load_figure_specs(
    syncing_agents: int, syncing_files: int, idle_agents: int
) -> list[FigureSpec]:
    """The load rows: agents syncing at once, and connected idle agents (issue 15's goals)."""
    syncing = f"{syncing_agents} agents syncing at once ({syncing_files:,} files)"
    idle = f"{idle_agents:,} idle agents"
    return [
        FigureSpec(f"{syncing}: wall time to all durable", "s", "load.sync.s"),
        FigureSpec(f"{syncing}: total", "files/s", "load.sync.files_per_s"),
        FigureSpec(f"{syncing}: server peak RSS", "MB", "load.sync.server_rss_mb"),
        FigureSpec(f"{syncing}: server CPU", "CPU-s", "load.sync.server_cpu_s"),
        FigureSpec(f"{syncing}: agents' CPU, all together", "CPU-s", "load.sync.agents_cpu_s"),
        FigureSpec(f"{syncing}: sync streams refused by the server's limits", "streams",
                   "load.sync.streams_refused"),
        FigureSpec(f"{syncing}: photos missing or damaged", "files", "load.sync.missing",
                   target=_at_most(0)),
        FigureSpec("server RSS before any agent connects", "MB", "load.idle.server_base_rss_mb"),
        FigureSpec(f"{idle}: server peak RSS", "MB", "load.idle.server_rss_mb",
                   target=_at_most(300)),
        FigureSpec(f"{idle}: server RSS per connected agent", "KB",
                   "load.idle.rss_per_agent_kb"),
        FigureSpec(f"{idle}: server CPU", "% of a core", "load.idle.server_cpu_pct"),
        FigureSpec(f"{idle}: heartbeat round trip, p50", "ms", "load.idle.heartbeat.p50"),
        FigureSpec(f"{idle}: heartbeat round trip, p95", "ms", "load.idle.heartbeat.p95",
                   target=_at_most(50)),
        FigureSpec(f"{idle}: heartbeat round trip, p99", "ms", "load.idle.heartbeat.p99"),
        FigureSpec(f"{idle}: agents registered", "agents", "load.idle.registered",
                   target=Target(TargetKind.AT_LEAST, idle_agents)),
        FigureSpec(f"{idle}: failed registrations and heartbeats", "RPCs", "load.idle.failures",
                   target=_at_most(0)),
    ]
