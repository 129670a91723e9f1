"""The warm and cold first-sync figures: the order their runs take, and what each run reports.

Warm: every daemon of the tool is up and connected before the clock; the photos then appear
in the watched folder (a prepared tree renamed into it) and the clock stops when the last one
is durable at the receiver. Cold: every process of the tool starts inside the clock, with the
photos already in place. Both are measured for every tool on every set, and the tools take
turns run by run, so a noisy minute on this shared machine hurts them alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from bench.peers.base import SyncRun

_MB = 1_000_000
_GB = 1_000_000_000
PHOTOS_PER_UNIT = 1_000
"""CPU is reported per 1,000 photos (and per GB)."""


class Mode(StrEnum):
    WARM = "warm"
    COLD = "cold"


MODES = (Mode.WARM, Mode.COLD)
SIDES = ("sender", "receiver")


@dataclass(frozen=True)
class Step:
    """One measurement of the plan: which run, set, mode and tool."""

    run: int
    set_name: str
    mode: Mode
    tool: str

    def describe(self, runs: int) -> str:
        return f"{self.tool}: {self.set_name} set, {self.mode}, run {self.run + 1}/{runs}"


def interleaved_plan(
    runs: int, set_names: Sequence[str], modes: Sequence[Mode], tools: Sequence[str]
) -> list[Step]:
    """Run by run, set by set, mode by mode, every tool once; the tools' order rotates by one
    each run (A B C, B C A, C A B, ...), so each tool starts a round as often as the others
    and none always runs right after the same neighbour's deletions and write-back."""
    plan: list[Step] = []
    for run in range(runs):
        shift = run % len(tools) if tools else 0
        order = [*tools[shift:], *tools[:shift]]
        for set_name in set_names:
            for mode in modes:
                plan += [Step(run, set_name, mode, tool) for tool in order]
    return plan


@dataclass(frozen=True)
class SideCost:
    """The CPU one side spent on a sync, per GB of payload and per 1,000 photos."""

    cpu_s: float
    per_gb: float
    per_kphotos: float


def side_cost(cpu_s: float, files: int, payload_bytes: int) -> SideCost:
    """CPU-seconds divided by the payload (GB, 10^9 bytes) and by the photos (thousands)."""
    if files <= 0 or payload_bytes <= 0:
        raise ValueError("a side's cost needs at least one file and one byte")
    return SideCost(
        cpu_s, cpu_s / (payload_bytes / _GB), cpu_s / (files / PHOTOS_PER_UNIT)
    )


def figure_key(set_name: str, mode: Mode | str, metric: str) -> str:
    """`large.warm.mbps`, `small.cold.cpu_per_gb.receiver`: how samples are named."""
    return f"{set_name}.{mode}.{metric}"


def run_values(set_name: str, mode: Mode, run: SyncRun) -> dict[str, float]:
    """Every sample one warm or cold run gives: wall time, throughput and each side's CPU."""
    values = {
        "s": run.seconds,
        "mbps": run.payload_bytes / _MB / run.seconds,
        "files_per_s": run.files / run.seconds,
    }
    for side, usage in (("sender", run.sender), ("receiver", run.receiver)):
        if usage is None:
            continue
        cost = side_cost(usage.cpu_s, run.files, run.payload_bytes)
        values[f"cpu_s.{side}"] = cost.cpu_s
        values[f"cpu_per_gb.{side}"] = cost.per_gb
        values[f"cpu_per_kphotos.{side}"] = cost.per_kphotos
    if run.bytes_sent is not None:
        values["bytes_sent"] = float(run.bytes_sent)
    return {figure_key(set_name, mode, metric): value for metric, value in values.items()}
