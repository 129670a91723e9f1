"""`photonic status` and `photonic conflicts`: what the agent is doing, read from its state DB
and live status file (so it works whether or not the agent runs), optionally from the server."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from typing import TYPE_CHECKING, Any

from photonic.agent.statedb import AgentStateDB, WatchState
from photonic.agent.statusfile import process_alive, read_status
from photonic.config import AgentConfig
from photonic.errors import PhotonicError
from photonic.rates import eta_s
from photonic.units import format_duration, format_rate, format_size

if TYPE_CHECKING:
    from photonic.agent.client import ServerClient

STALE_AFTER_S = 5.0


MAX_FAILED_SHOWN = 50
"""Files listed with their reason in `photonic status`; the rest are counted."""


def collect(config: AgentConfig) -> dict[str, Any]:
    """Everything `status` shows, as plain data (also the --json output)."""
    db_path = config.buffer_path / "agent.db"
    live = read_status(config.buffer_path) or {}
    running = (bool(live.get("running")) and process_alive(int(live.get("pid", 0)))
               and time.time() - float(live.get("updated_unix", 0)) < STALE_AFTER_S)
    out: dict[str, Any] = {
        "agent_id": config.agent_id,
        "running": running,
        "state": live.get("state", "offline") if running else "offline",
        "state_reason": live.get("reason", ""),
        "endpoint": live.get("endpoint", ""),
        "last_sync_unix": live.get("last_sync_unix", 0.0),
        "queue": {"files": 0, "bytes": 0, "errored": 0},
        "failed_files": [],
        "servers": [],
        "watches": [],
        "progress": {},
    }
    states: dict[str, WatchState] = {}
    indexed: dict[str, int] = {}
    if db_path.exists():
        db = AgentStateDB(db_path, read_only=True)
        try:
            stats = db.queue_stats()
            out["queue"] = {"files": stats.files, "bytes": stats.bytes, "errored": stats.errored}
            out["failed_files"] = [{"watch": w, "path": p, "reason": r}
                                   for w, p, r in db.failed_files(MAX_FAILED_SHOWN)]
            states = {w.name: w for w in db.watch_states()}
            # The index, not the last full scan's count: files the watcher added since count.
            indexed = {w.name: db.indexed_count(w.name) for w in config.watches}
        except sqlite3.OperationalError as exc:
            # An agent starting right now has created the file but not yet its tables.
            if "no such table" not in str(exc):
                raise
        finally:
            db.close()
    for w in config.watches:
        st = states.get(w.name)
        exists = w.path.is_dir()
        out["watches"].append({
            "name": w.name, "path": str(w.path), "mode": w.mode.value,
            "state": ("missing" if not exists else st.state.value if st else "not scanned"),
            "reason": (st.reason if st else "") or ("" if exists else "folder not found"),
            "files": indexed.get(w.name, st.file_count if st else 0),
        })
    for endpoint in config.server_endpoints:
        active = running and live.get("endpoint") == endpoint
        out["servers"].append({"endpoint": endpoint, "connected": active,
                               "files_pending": out["queue"]["files"],
                               "bytes_pending": out["queue"]["bytes"]})
    if running:
        out["progress"] = _progress(live, pending_bytes=out["queue"]["bytes"])
    return out


def _progress(live: dict[str, Any], *, pending_bytes: int) -> dict[str, Any]:
    """This session's totals and the recent rate; eta_s is None (null) when it is unknown:
    nothing pending, or nothing sent over the recent window."""
    rate = float(live.get("recent_rate_bytes_per_s", 0.0))
    return {
        "files_done": int(live.get("session_files_done", 0)),
        "bytes_done": int(live.get("session_bytes_done", 0)),
        "rate_bytes_per_s": rate,
        "eta_s": eta_s(pending_bytes, rate),
    }


def render(s: dict[str, Any]) -> str:
    q = s["queue"]
    lines = [f"agent {s['agent_id']}: {s['state'].upper()}"
             + ("" if s["running"] else " (agent not running)")
             + (f" — {s['state_reason']}" if s["state_reason"] and s["running"] else "")]
    lines.append(f"queue: {q['files']} files, {format_size(q['bytes'])} pending"
                 + (f", {q['errored']} not sent (below)" if q["errored"] else ""))
    for f in s["failed_files"]:
        lines.append(f"  not sent: {f['watch']}/{f['path']}: {f['reason']}")
    if q["errored"] > len(s["failed_files"]):
        lines.append(f"  ... and {q['errored'] - len(s['failed_files'])} more")
    for srv in s["servers"]:
        mark = "connected" if srv["connected"] else "not connected"
        lines.append(f"server {srv['endpoint']}: {mark}; {srv['files_pending']} files, "
                     f"{format_size(srv['bytes_pending'])} pending")
    p = s["progress"]
    if p:
        eta = "-" if p["eta_s"] is None else format_duration(p["eta_s"])
        lines.append(f"progress: {p['files_done']} files, {format_size(p['bytes_done'])} done "
                     f"at {format_rate(p['rate_bytes_per_s'])}; ETA {eta}")
    for w in s["watches"]:
        note = f" — {w['reason']}" if w["reason"] else ""
        lines.append(f"watch {w['name']} ({w['path']}, {w['mode']}): {w['state'].upper()}, "
                     f"{w['files']} files{note}")
    if "remote" in s:
        r = s["remote"]
        lines.append(f"server says: {r['photos']} photos, {format_size(r['bytes_stored'])} "
                     f"stored, {len(r['open_conflicts'])} open conflicts")
        lines.append(f"copies: {r['photos_safe']} of {r['photos']} photos in at least "
                     f"{r['min_copies']} copies (server and backup nodes)")
        lines.extend(r.get("backup_notes", []))
    return "\n".join(lines)


async def _connect(config: AgentConfig) -> ServerClient:
    """The first reachable server, with the agent's certificate. grpc, protobuf and the TLS
    code are imported here, not with this module: plain `status` reads local files only."""
    from photonic.agent.client import connect_first
    from photonic.tls import channel_credentials

    sec = config.security
    return await connect_first(config.server_endpoints,
                               channel_credentials(sec.cert_path, sec.key_path, sec.ca_path),
                               config.agent_id)


async def _remote(config: AgentConfig) -> dict[str, Any]:
    client = await _connect(config)
    try:
        st = await client.status()
    finally:
        await client.close()
    return {"photos": st.photos, "bytes_stored": st.bytes_stored, "paused": st.paused,
            "open_conflicts": [c.__dict__ for c in st.open_conflicts],
            "photos_safe": st.photos_safe, "min_copies": st.min_copies,
            "backup_notes": list(st.backup_notes)}


def run_status(config: AgentConfig, *, as_json: bool, watch: bool, remote: bool) -> int:
    while True:
        data = collect(config)
        if remote:
            import asyncio  # only --remote runs a loop; plain status reads local files

            try:
                data["remote"] = asyncio.run(_remote(config))
            except PhotonicError as exc:
                data["remote_error"] = str(exc)
        text = json.dumps(data, indent=2) if as_json else render(data)
        if not watch:
            print(text)
            return 0
        sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")
        sys.stdout.flush()
        try:
            time.sleep(1.0)
        except KeyboardInterrupt:
            return 0


def run_conflicts(config: AgentConfig, action: str, ids: list[int], resolve_all: bool) -> int:
    import asyncio

    async def go() -> int:
        client = await _connect(config)
        try:
            if action == "list":
                # Settling no conflicts changes nothing and audits nothing, but the server
                # checks the admin scope first: a non-admin gets the same refusal as
                # keep-server, not an empty list that looks like "no conflicts".
                await client.resolve_conflicts([], keep_incoming=False)
                st = await client.status("*")  # every agent's, not only this one's
                for c in st.open_conflicts:
                    print(f"{c.id}\t{c.agent_id}/{c.watch_name}/{c.relative_path}\t"
                          f"server={c.server_sha256[:12]} incoming={c.incoming_sha256[:12]}")
                return 0
            done = await client.resolve_conflicts(ids, action == "keep-incoming", resolve_all)
            print(f"resolved {len(done)} conflicts: {' '.join(map(str, done))}")
            return 0
        finally:
            await client.close()

    return asyncio.run(go())
