"""The simplest whole path: photos in a folder reach the server's library byte-identical."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.daemons import (
    Daemon,
    ServerHandle,
    make_agent,
    run_cli,
    tree_hashes,
    write_server_config,
)
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import library_hashes

pytestmark = pytest.mark.e2e


def test_once_syncs_a_folder_byte_identical(tmp_path: Path, pki: TestPki,
                                             server: ServerHandle) -> None:
    """`photonic agent --once` uploads every photo and the library holds identical bytes."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    photos = agent.watches["photos"]
    for i in range(3):
        make_jpeg(photos / f"IMG_{i:04d}.jpg", seed=i)
    summary = agent.once()
    assert summary["files_uploaded"] == 3
    assert library_hashes(server, "laptop", "photos") == tree_hashes(photos)


def test_a_second_server_on_the_address_of_a_running_one_does_not_start(
        tmp_path: Path, pki: TestPki, server: ServerHandle, daemons: list[Daemon]) -> None:
    """Given the address the first server listens on, a second server exits at once saying the
    port is in use, instead of listening beside it (the kernel would then split the agents'
    connections between two storages); the first one goes on serving."""
    config, _ = write_server_config(tmp_path / "second", pki, port=server.port)
    second = Daemon("second", ["server", "--config", str(config)],
                    tmp_path / "second" / "server.log")
    daemons.append(second.start())
    assert second.proc is not None
    assert second.proc.wait(60) != 0
    assert (f"cannot listen on 127.0.0.1:{server.port}: the port is in use"
            in second.log()), second.log()[-3000:]
    assert "Traceback" not in second.log()
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    make_jpeg(agent.watches["photos"] / "IMG_0001.jpg", seed=41)
    assert agent.once()["files_uploaded"] == 1
    assert library_hashes(server, "laptop", "photos") == tree_hashes(agent.watches["photos"])


def test_tls_files_that_go_bad_after_a_good_run_are_caught_at_the_next_start(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """The agent remembers TLS files that passed its start-up check (and skips it while they
    are unchanged); replaced by an expired pair, or a key opened to other users, the next
    start checks them again and says what is wrong, in a sentence."""
    tls = tmp_path / "tls"
    tls.mkdir()
    cert, key = tls / "laptop.crt", tls / "laptop.key"
    shutil.copy2(pki.agent_cert("laptop"), cert)
    shutil.copy2(pki.agent_key("laptop"), key)
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server, extra={
        "security": {"cert_path": str(cert), "key_path": str(key)}})
    make_jpeg(agent.watches["photos"] / "IMG_1.jpg", seed=1)
    assert agent.once()["files_uploaded"] == 1
    assert (agent.buffer / "tls-check.json").exists()

    key.chmod(0o644)
    proc = run_cli("agent", "--config", str(agent.config_path), "--once")
    assert proc.returncode == 0, proc.stderr
    assert "can be read by other users" in proc.stderr and "chmod 600" in proc.stderr
    key.chmod(0o600)

    shutil.copy2(pki.expired_cert, cert)
    shutil.copy2(pki.expired_key, key)
    proc = run_cli("agent", "--config", str(agent.config_path), "--once")
    assert proc.returncode == 1, proc.stderr
    assert f"{cert} expired on" in proc.stderr
    assert "cannot start: fix the TLS files above" in proc.stderr
    assert "Traceback" not in proc.stderr
