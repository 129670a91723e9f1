"""`photonic audit tail` against a running server: a sync, a job submit and a conflict
resolution each leave an audit line naming the certificate that did it (a sync one line per
SyncBatch call, not per photo); a non-admin `conflicts list` is refused like `keep-server`,
not answered with silence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import ServerHandle, make_agent, run_cli, sha256_of, wait_until
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki

pytestmark = pytest.mark.e2e


def _audit(server: ServerHandle) -> list[dict[str, Any]]:
    proc = run_cli("audit", "tail", "--json", "-n", "1000", "--config",
                   str(server.config_path), check=True)
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_sync_submit_and_resolution_are_audited_under_their_certificates(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """The laptop's sync is audited as laptop: its registrations, and one SyncBatch row per
    call that committed photos (files, new bytes, deduplicated paths; 12 photos are a few
    rows, one per batch, not 12); the admin's job submit and conflict resolution as admin, with the
    job id and conflict id as targets. The key=value form has the same rows."""
    laptop = make_agent(tmp_path / "laptop", pki, "laptop", server,
                        extra={"sync": {"conflict_resolution": "manual"}})
    photo = make_jpeg(laptop.watches["photos"] / "IMG_1.jpg", seed=1)
    shoot = [make_jpeg(laptop.watches["photos"] / f"IMG_{n}.jpg", seed=n)
             for n in range(2, 13)]
    first_bytes = sum(p.stat().st_size for p in [photo, *shoot])
    assert laptop.once()["files_uploaded"] == 12
    # a call's row is written as the server ends it, which may be just after the agent is done
    first_sync = wait_until(lambda: _sync_rows(server, files=12), 20, 0.2, "sync audited")
    assert 1 <= len(first_sync) < 12, first_sync
    assert _sync_totals(first_sync) == {"files": 12, "bytes": first_bytes, "deduplicated": 0}
    shutil.rmtree(laptop.buffer)  # a lost index, then a change: a parked conflict
    make_jpeg(photo, seed=100)
    assert laptop.once()["conflicts"] == 1
    wait_until(lambda: _sync_rows(server, files=24), 20, 0.2, "second sync audited")
    admin = make_agent(tmp_path / "admin", pki, "admin", server)
    admin_cfg = ["--config", str(admin.config_path)]
    new_sha = sha256_of(photo)
    job = json.loads(run_cli("jobs", "submit", "bgremove", "--photo", new_sha, "--json",
                             *admin_cfg, check=True).stdout)
    listed = run_cli("conflicts", "list", *admin_cfg, check=True).stdout
    assert "laptop/photos/IMG_1.jpg" in listed  # every agent's, the admin never registered
    run_cli("conflicts", "keep-server", "--all", *admin_cfg, check=True)

    rows = _audit(server)
    assert [r["actor"] for r in rows if r["action"] == "RegisterAgent"] == ["laptop", "laptop"]
    syncs = [r for r in rows if r["action"] == "SyncBatch"]
    assert {(r["actor"], r["target"], r["result"]) for r in syncs} == {
        ("laptop", "laptop", "ok")}
    # the second sync: 11 unchanged photos found stored, IMG_1's new content parked
    assert _sync_totals(syncs[len(first_sync):]) == {
        "files": 12, "bytes": photo.stat().st_size, "deduplicated": 11}
    submits = [r for r in rows if r["action"] == "SubmitJob"]
    assert [(r["actor"], r["target"], r["result"]) for r in submits] == [
        ("admin", job["jobId"], "ok")]
    resolutions = [r for r in rows if r["action"] == "ResolveConflicts"]
    assert [(r["actor"], r["result"], r["detail"]) for r in resolutions] == [
        ("admin", "ok", "keep_server")]
    assert all(set(r) == {"time", "actor", "action", "target", "result", "detail"}
               for r in rows)
    text = run_cli("audit", "tail", "-n", "1", "--config", str(server.config_path),
                   check=True).stdout.splitlines()
    assert len(text) == 1 and "actor=admin action=ResolveConflicts" in text[0]


def _sync_rows(server: ServerHandle, *, files: int) -> list[dict[str, Any]]:
    """The SyncBatch rows once they count files in all, else []."""
    rows = [r for r in _audit(server) if r["action"] == "SyncBatch"]
    return rows if _sync_totals(rows).get("files") == files else []


def _sync_totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The sums of the key=value counts in SyncBatch rows' details."""
    totals: dict[str, int] = {}
    for row in rows:
        for item in row["detail"].split():
            key, value = item.split("=")
            totals[key] = totals.get(key, 0) + int(value)
    return totals


def test_conflicts_list_without_admin_scope_is_refused(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """`conflicts list` with a sync-only certificate exits 1 with the scope error that
    `conflicts keep-server` gives, and nothing on stdout that reads as "no conflicts"."""
    laptop = make_agent(tmp_path / "laptop", pki, "laptop", server)
    listed = run_cli("conflicts", "list", "--config", str(laptop.config_path))
    kept = run_cli("conflicts", "keep-server", "--all", "--config", str(laptop.config_path))
    assert listed.returncode == kept.returncode == 1, listed.stderr
    assert "lacks the 'admin' scope" in listed.stderr and listed.stdout == ""
    assert listed.stderr == kept.stderr
