"""The agent's first scan alone, as its own process: `python -m bench.scan_probe --config
agent.yaml` builds the agent exactly as `photonic agent` does (its config loader, its
allocator tuning, its composition root AgentApp with the Scanner, the state database and the
ScanRunner inside), runs one scan of every watch (walk, hash, index and queue every file
never hashed), prints one JSON line, and exits: no server, no upload.

The benchmark times this process from outside (procstat.run_measured: wall, CPU, peak RSS),
so the figure is the agent's own scan-hash-queue path, never a re-implementation of it. The
state database it leaves in the buffer folder holds every file queued, which the scale
figures turn into a synced index (scale_index).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from photonic.config import AgentConfig, load_agent_config
from photonic.logfmt import configure_logging
from photonic.memtune import keep_freed_buffers


async def scan_once(config: AgentConfig) -> dict[str, object]:
    """One scan of every watch through the agent's own parts; what it found, as JSON."""
    from photonic.agent.app import AgentApp

    app = AgentApp(config)
    started = time.monotonic()
    try:
        reports = await app.scans.scan_all()
    finally:
        app.db.close()
    return {
        "files_seen": sum(r.files_seen for r in reports),
        "files_hashed": sum(r.files_hashed for r in reports),
        "files_queued": sum(r.files_queued for r in reports),
        "bytes_hashed": sum(r.bytes_hashed for r in reports),
        "files_skipped": sum(r.files_skipped for r in reports),
        "seconds": round(time.monotonic() - started, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scan_probe", description=__doc__)
    p.add_argument("--config", type=Path, required=True, help="the agent's YAML config")
    p.add_argument("--log-level", default="warning",
                   choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    config = load_agent_config(args.config)
    configure_logging(args.log_level, component="agent", agent=config.agent_id)
    keep_freed_buffers()  # as `photonic agent` does: it shapes the peak RSS measured
    print(json.dumps(asyncio.run(scan_once(config))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
