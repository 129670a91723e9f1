"""Scrub, repair and restore on real daemons over real mutual TLS (the archive issue's test 3):
a primary replicating to an archive node; a byte flipped in an object on the primary's disk
is found by the background scrub, quarantined, repaired from the archive, and the library
shows the right bytes, with metrics, audit rows and events saying so. Without a replica the
object is reported (metric, event, /healthz, a non-zero `photonic scrub --now`) and its
damaged bytes stay in quarantine. A primary whose store is wiped gets every photo back with
`photonic restore --from archive --all`."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from photonic.pki import issue_agent_cert
from tests.support.daemons import (
    ServerHandle,
    catalog_rows,
    free_port,
    make_agent,
    run_cli,
    sha256_of,
    start_server,
    wait_until,
    web_token,
)
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki

pytestmark = [pytest.mark.e2e, pytest.mark.local_objects(
    "the scrub, repair and restore read local objects")]

PRIMARY, ARCHIVE = "primary-node", "archive-node"


@pytest.fixture(scope="module")
def node_certs(pki: TestPki) -> dict[str, tuple[Path, Path]]:
    """Server certificates that are TLS clients too (`certs issue NAME --role server`)."""
    return {name: issue_agent_cert(pki.pki_dir, name, force=True, server_role=True)
            for name in (PRIMARY, ARCHIVE)}


def _security(pki: TestPki, certs: dict[str, tuple[Path, Path]], name: str) -> dict[str, str]:
    cert, key = certs[name]
    return {"cert_path": str(cert), "key_path": str(key), "ca_path": str(pki.ca)}


def start_pair(root: Path, pki: TestPki, certs: dict[str, tuple[Path, Path]], *,
               replicate: bool = True, scrub: dict[str, Any] | None = None
               ) -> tuple[ServerHandle, ServerHandle | None]:
    """An archive node (unless replicate is False) and a primary with a dashboard port."""
    archive = None
    storage: dict[str, Any] = {"scrub_interval": "3s", "scrub_rate": "200MB/s",
                               **(scrub or {})}
    if replicate:
        archive = start_server(root / "archive", pki, extra={
            "server": {"role": "archive"}, "security": _security(pki, certs, ARCHIVE),
            "agents": {PRIMARY: {"scopes": ["replicate"]}},
            "storage": {"scrub_interval": "1h"}})
        storage["backup_nodes"] = [{"name": "archive", "endpoint": archive.endpoint}]
    port = free_port()
    primary = start_server(root / "primary", pki, extra={
        "server": {"web_ui_port": port}, "security": _security(pki, certs, PRIMARY),
        "storage": storage})
    primary.http_port = port
    return primary, archive


def _get(server: ServerHandle, path: str, token: str = "") -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            body = reply.read()
    except urllib.error.HTTPError as exc:  # /healthz answers 503 with its JSON too
        body = exc.read()
    return body.decode() if path == "/metrics" else json.loads(body)


def metric(server: ServerHandle, name: str) -> float:
    for line in _get(server, "/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def flip_a_byte(server: ServerHandle, sha: str) -> Path:
    path = server.storage / "objects" / sha[:2] / sha[2:4] / sha
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0x01]))
    return path


def audit_rows(server: ServerHandle) -> list[tuple[str, str, str, str]]:
    """(actor, action, target, result) of every audit row, read beside the running daemon."""
    return [(str(a), str(b), str(c), str(d)) for a, b, c, d in catalog_rows(
        server, "SELECT actor, action, target, result FROM audit")]


def held_by(server: ServerHandle, shas: set[str]) -> bool:
    return shas <= {p.name for p in server.objects()}


@pytest.fixture
def stop_all() -> Iterator[list[ServerHandle]]:
    handles: list[ServerHandle] = []
    yield handles
    for h in handles:
        if h.daemon.running:
            h.daemon.terminate(20)


def test_a_flipped_byte_is_found_quarantined_and_repaired_from_the_archive(
        tmp_path: Path, pki: TestPki, node_certs: dict[str, tuple[Path, Path]],
        stop_all: list[ServerHandle]) -> None:
    """The background scrub finds the damage, keeps the damaged bytes in quarantine, fetches
    the archive's copy, and the library file has the right bytes again."""
    primary, archive = start_pair(tmp_path, pki, node_certs)
    assert archive is not None
    stop_all += [primary, archive]
    agent = make_agent(tmp_path / "laptop", pki, "laptop", primary)
    photos = {n: make_jpeg(agent.watches["photos"] / f"IMG_{n}.jpg", seed=n) for n in range(3)}
    assert agent.once()["files_uploaded"] == 3
    shas = {sha256_of(p) for p in photos.values()}
    wait_until(lambda: held_by(archive, shas), 90, message="the archive to hold the photos")

    victim = sha256_of(photos[1])
    damaged_path = flip_a_byte(primary, victim)
    primary.daemon.wait_for_log("event=object_repaired", timeout_s=90)

    library_file = primary.library("laptop", "photos") / "IMG_1.jpg"
    wait_until(lambda: sha256_of(library_file) == victim, 30,
               message="the library file to hold the right bytes")
    assert sha256_of(damaged_path) == victim  # the object itself, relinked
    kept = list((primary.storage / "quarantine").iterdir())
    assert len(kept) == 1 and sha256_of(kept[0]) != victim  # the damaged bytes, kept
    assert metric(primary, "photonic_scrub_damaged_total") == 1
    assert metric(primary, "photonic_scrub_repaired_total") == 1
    assert metric(primary, "photonic_scrub_unrepaired") == 0
    assert metric(primary, "photonic_scrub_objects_checked_total") >= 3
    wait_until(lambda: metric(primary, "photonic_scrub_last_pass_completed_timestamp_seconds")
               > 0, 30, message="a completed pass")
    actions = audit_rows(primary)
    assert ("scrub", "ScrubQuarantine", victim, "quarantined") in actions
    assert ("scrub", "ScrubRepair", victim, "ok") in actions
    health = _get(primary, "/healthz")
    assert health["scrub"]["unrepaired"] == 0 and health["scrub"]["repair_from"] == ["archive"]

    flip_a_byte(primary, sha256_of(photos[2]))  # found by the pass run now, not the daemon's
    now = run_cli("scrub", "--now", "--config", str(primary.config_path), "--json")
    assert now.returncode == 0, now.stdout + now.stderr
    result = json.loads(now.stdout)
    assert result["ok"] and [r["from"] for r in result["repaired"]] == ["archive"]
    assert sha256_of(primary.library("laptop", "photos") / "IMG_2.jpg") == sha256_of(photos[2])


def test_without_a_replica_the_damage_is_reported_and_the_original_kept(
        tmp_path: Path, pki: TestPki, node_certs: dict[str, tuple[Path, Path]],
        stop_all: list[ServerHandle]) -> None:
    """No replica: the metric, an event on the dashboard's feed, /healthz and the audit say
    so; `photonic scrub --now` exits 1 naming the photo; the damaged file is not deleted."""
    primary, _ = start_pair(tmp_path, pki, node_certs, replicate=False)
    stop_all.append(primary)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", primary)
    photo = make_jpeg(agent.watches["photos"] / "IMG_9.jpg", seed=9)
    assert agent.once()["files_uploaded"] == 1
    sha = sha256_of(photo)
    flip_a_byte(primary, sha)
    primary.daemon.wait_for_log("event=object_unrepairable", timeout_s=90)

    wait_until(lambda: metric(primary, "photonic_scrub_unrepaired") == 1, 30,
               message="the unrepaired gauge")
    assert metric(primary, "photonic_scrub_damaged_total") == 1
    assert ("scrub", "ScrubRepair", sha, "failed") in audit_rows(primary)
    token = web_token(primary, "ops")
    events = _get(primary, "/api/v1/events?after=0&timeout=0", token)["events"]
    kinds = [(e["kind"], e["sha256"]) for e in events]
    assert ("object_quarantined", sha) in kinds and ("object_unrepairable", sha) in kinds
    assert _get(primary, "/healthz")["scrub"]["unrepaired"] == 1
    assert ("scrub", "ScrubRepair", sha, "failed") in audit_rows(primary)

    now = run_cli("scrub", "--now", "--config", str(primary.config_path))
    assert now.returncode == 1, now.stdout + now.stderr
    assert f"UNREPAIRED {sha}" in now.stdout and "library/laptop/photos/IMG_9.jpg" in now.stdout
    kept = list((primary.storage / "quarantine").iterdir())
    assert len(kept) == 1 and kept[0].stat().st_size == photo.stat().st_size
    assert (primary.library("laptop", "photos") / "IMG_9.jpg").exists()  # nothing deleted


def test_restore_brings_a_wiped_primary_back_from_the_archive(
        tmp_path: Path, pki: TestPki, node_certs: dict[str, tuple[Path, Path]],
        stop_all: list[ServerHandle]) -> None:
    """Every library file comes back byte for byte; a second run fetches nothing."""
    primary, archive = start_pair(tmp_path, pki, node_certs, scrub={"scrub_interval": "1h"})
    assert archive is not None
    stop_all += [primary, archive]
    agent = make_agent(tmp_path / "laptop", pki, "laptop", primary)
    photos = [make_jpeg(agent.watches["photos"] / d / f"IMG_{n}.jpg", seed=20 + n)
              for n, d in enumerate(["2024", "2024", "2025", "."])]
    assert agent.once()["files_uploaded"] == 4
    expected = {p.relative_to(agent.watches["photos"]).as_posix(): sha256_of(p) for p in photos}
    wait_until(lambda: held_by(archive, set(expected.values())), 90,
               message="the archive to hold the photos")
    primary.daemon.terminate(20)
    shutil.rmtree(primary.storage)

    done = run_cli("restore", "--from", "archive", "--all", "--config",
                   str(primary.config_path), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["fetched"] == 4 and report["paths_recorded"] == 4 and report["ok"]
    library = primary.library("laptop", "photos")
    assert {rel: sha256_of(library / rel) for rel in expected} == expected

    again = json.loads(run_cli("restore", "--from", "archive", "--all", "--config",
                               str(primary.config_path), "--json", check=True).stdout)
    assert again["fetched"] == 0 and again["present"] == 4
    primary.start()  # the restored store serves as the primary's own
    assert agent.once()["files_uploaded"] == 0
