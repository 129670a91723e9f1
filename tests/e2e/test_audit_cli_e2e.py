"""`photonic audit tail` against a running server: a sync, a job submit and a conflict
resolution each leave an audit line naming the certificate that did it; a non-admin
`conflicts list` is refused like `keep-server`, not answered with silence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import ServerHandle, make_agent, run_cli, sha256_of
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki

pytestmark = pytest.mark.e2e


def _audit(server: ServerHandle) -> list[dict[str, Any]]:
    proc = run_cli("audit", "tail", "--json", "-n", "1000", "--config",
                   str(server.config_path), check=True)
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_sync_submit_and_resolution_are_audited_under_their_certificates(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """The laptop's sync is audited as laptop (its registration: successful batches are not
    audited one by one, refusals are); the admin's job submit and conflict resolution as
    admin, with the job id and conflict id as targets. The key=value form has the same rows."""
    laptop = make_agent(tmp_path / "laptop", pki, "laptop", server,
                        extra={"sync": {"conflict_resolution": "manual"}})
    photo = make_jpeg(laptop.watches["photos"] / "IMG_1.jpg", seed=1)
    assert laptop.once()["files_uploaded"] == 1
    shutil.rmtree(laptop.buffer)  # a lost index, then a change: a parked conflict
    make_jpeg(photo, seed=2)
    assert laptop.once()["conflicts"] == 1
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
