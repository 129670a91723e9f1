"""Many idle agents in one process: each its own mTLS channel, registers once, then heartbeats.

Run by bench/load.py as `python -m bench.load_client ...`; prints one JSON object on stdout.
It speaks the wire protocol directly (photonic.v1 stubs), as bench/scale.py does: a thousand
real agent daemons would measure the machine's process count, not the server. Each simulated
agent sends what the real agent sends while it has nothing to do: RegisterAgent at start,
then a Heartbeat every HEARTBEAT_INTERVAL_S (photonic/agent/app.py) saying it is monitoring.
Connections are spread over a ramp, and each agent's heartbeat phase is spread over the
interval, as agents started at different moments would be.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import socket
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from photonic import __version__, tls
from photonic.grpc_options import CHANNEL_OPTIONS
from photonic.v1 import common_pb2, sync_pb2, sync_pb2_grpc

_RPC_TIMEOUT_S = 10.0  # the real agent's heartbeat deadline
# Each simulated agent gets its own connection, as separate machines would: without this,
# channels to the same target could share one subchannel (one TCP connection).
_OWN_CONNECTION = ("grpc.use_local_subchannel_pool", 1)


@dataclass
class Tally:
    """What the simulated agents saw, split into the ramp (agents still connecting) and the
    steady state (every agent connected and registered)."""

    registered: int = 0
    register_ms: list[float] = field(default_factory=list)
    ramp_ms: list[float] = field(default_factory=list)
    steady_ms: list[float] = field(default_factory=list)
    steady_sent_unix_s: list[float] = field(default_factory=list)  # when each was sent
    failures: Counter[str] = field(default_factory=Counter)
    steady_from: float = float("inf")

    def record(self, sent_at: float, elapsed_ms: float) -> None:
        if sent_at < self.steady_from:
            self.ramp_ms.append(elapsed_ms)
            return
        self.steady_ms.append(elapsed_ms)
        # Wall-clock send times let slow beats be lined up across client processes.
        self.steady_sent_unix_s.append(time.time() - (time.perf_counter() - sent_at))


async def _idle_agent(
    agent: str, target: str, certs: Path, start_at: float, end_at: float,
    interval_s: float, tally: Tally,
) -> None:
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    creds = tls.channel_credentials(
        certs / f"{agent}.crt", certs / f"{agent}.key", certs / "ca.crt"
    )
    options = [*CHANNEL_OPTIONS, _OWN_CONNECTION]
    async with grpc.aio.secure_channel(target, creds, options=options) as channel:
        stub = sync_pb2_grpc.PhotonicSyncStub(channel)  # type: ignore[no-untyped-call]
        started = time.perf_counter()
        try:
            await stub.RegisterAgent(sync_pb2.RegisterAgentRequest(
                agent_id=agent, hostname=socket.gethostname(), version=__version__,
                watch_names=["photos"]), timeout=_RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            tally.failures[f"RegisterAgent {exc.code().name}"] += 1
            return
        tally.register_ms.append((time.perf_counter() - started) * 1000)
        tally.registered += 1
        request = sync_pb2.HeartbeatRequest(agent_id=agent, state=common_pb2.AGENT_STATE_MONITORING)
        # A random phase within the interval, as agents started at different moments have.
        next_at = time.perf_counter() + random.uniform(0, interval_s)
        while next_at < end_at:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            sent_at = time.perf_counter()
            try:
                await stub.Heartbeat(request, timeout=_RPC_TIMEOUT_S)
            except grpc.aio.AioRpcError as exc:
                tally.failures[f"Heartbeat {exc.code().name}"] += 1
            else:
                tally.record(sent_at, (time.perf_counter() - sent_at) * 1000)
            next_at += interval_s


async def run_idle_agents(
    agents: Sequence[str], target: str, certs: Path, *, ramp_s: float, steady_s: float,
    interval_s: float,
) -> Tally:
    """Connects every agent over ramp_s, then lets them heartbeat for steady_s more."""
    tally = Tally()
    begin = time.perf_counter()
    tally.steady_from = begin + ramp_s + interval_s  # the last agent's first beat is due by then
    end_at = tally.steady_from + steady_s
    step = ramp_s / max(1, len(agents))
    await asyncio.gather(*(
        _idle_agent(agent, target, certs, begin + i * step, end_at, interval_s, tally)
        for i, agent in enumerate(agents)
    ))
    return tally


def raise_open_files_limit(needed: int) -> tuple[int, int]:
    """Raises this process's soft RLIMIT_NOFILE towards the hard limit when `needed` is more;
    returns the (soft, hard) limits in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = soft_limit_for(soft, hard, needed)
    if wanted != soft:
        # When refused, the limits returned below say so, and the caller reports them.
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def soft_limit_for(soft: int, hard: int, needed: int) -> int:
    """The soft limit to set: unchanged when it already covers `needed`, else the hard limit,
    which may still be less than needed. An unlimited hard limit (RLIM_INFINITY) gives
    `needed`, since Linux refuses an unlimited number of open files."""
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    return needed if hard == resource.RLIM_INFINITY else hard


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.load_client", description=__doc__)
    p.add_argument("--target", required=True, help="host:port of the server (127.0.0.1 only)")
    p.add_argument("--certs", type=Path, required=True, help="folder with ca.crt, <agent>.crt/.key")
    p.add_argument("--agents", required=True, help="comma-separated agent ids")
    p.add_argument("--ramp-s", type=float, required=True)
    p.add_argument("--steady-s", type=float, required=True)
    p.add_argument("--interval-s", type=float, required=True)
    args = p.parse_args(argv)
    if not args.target.startswith("127.0.0.1:"):
        print("the load client only talks to 127.0.0.1", file=sys.stderr)
        return 2
    agents = args.agents.split(",")
    soft, hard = raise_open_files_limit(len(agents) + 64)
    tally = asyncio.run(run_idle_agents(
        agents, args.target, args.certs, ramp_s=args.ramp_s, steady_s=args.steady_s,
        interval_s=args.interval_s))
    json.dump({
        "agents": len(agents), "registered": tally.registered,
        "register_ms": tally.register_ms, "ramp_ms": tally.ramp_ms,
        "steady_ms": tally.steady_ms, "steady_sent_unix_s": tally.steady_sent_unix_s,
        "failures": dict(tally.failures),
        "open_files_limit": [soft, hard],
    }, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
