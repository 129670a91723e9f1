"""Every config error stops `photonic agent` / `photonic server` before anything starts, with
the file, the dotted key and what was expected on stderr, and exit code 2."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from photonic.config import load_agent_config
from tests.support.daemons import free_port, run_cli, write_agent_config, write_server_config
from tests.support.pki import TestPki

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

EXIT_USAGE = 2
Config = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One broken config: how to break a valid one, and what stderr must then say (for YAML
    that does not parse, the "key" is the position of the error)."""

    name: str
    daemon: str  # "agent" | "server"
    key: str
    expected: str
    breaks: Callable[[Config], Config | str | None]  # None: the file does not exist


def _set(section: str, key: str, value: object) -> Callable[[Config], Config]:
    def change(config: Config) -> Config:
        config[section][key] = value
        return config
    return change


def _drop(section: str, key: str) -> Callable[[Config], Config]:
    def change(config: Config) -> Config:
        del config[section][key]
        return config
    return change


_SIZE = "a size like 1.5TB"
_SYNTAX = "agent:\n  id: [laptop\n  watch: {\n"
CASES = [
    Case("unknown key", "agent", "agent.setle_delay", "did you mean settle_delay?",
         _set("agent", "setle_delay", "1s")),
    Case("wrong type", "agent", "network.parallel_transfers", "a whole number from 1 to 64",
         lambda c: {**c, "network": {"parallel_transfers": "four"}}),
    Case("bad size", "agent", "agent.max_buffer_size", _SIZE,
         _set("agent", "max_buffer_size", "1.5XB")),
    Case("bad duration", "agent", "agent.settle_delay", "a duration like 45s",
         _set("agent", "settle_delay", "soonish")),
    Case("bad conflict_resolution", "agent", "sync.conflict_resolution",
         "one of: auto, manual, server_wins",
         lambda c: {**c, "sync": {"conflict_resolution": "newest"}}),
    Case("missing required key", "agent", "agent.buffer_path", "the key is missing",
         _drop("agent", "buffer_path")),
    Case("empty watch list", "agent", "agent.watch", "a list of at least one folder",
         _set("agent", "watch", [])),
    Case("yaml syntax error", "agent", "line 3, column 8", "valid YAML", lambda c: _SYNTAX),
    Case("missing file", "agent", "(file)", "an existing config file", lambda c: None),
    Case("unknown key", "server", "server.storage_pth", "did you mean storage_path?",
         _set("server", "storage_pth", "/tmp/x")),
    Case("wrong type", "server", "limits.max_agents", "a whole number",
         lambda c: {**c, "limits": {"max_agents": "many"}}),
    Case("bad size", "server", "storage.min_free_space", _SIZE,
         _set("storage", "min_free_space", "1.5XB")),
    Case("missing required key", "server", "server.storage_path", "the key is missing",
         _drop("server", "storage_path")),
    Case("yaml syntax error", "server", "line 3, column 1", "valid YAML",
         lambda c: "server:\n  bind_address: [\n"),
    Case("missing file", "server", "(file)", "an existing config file", lambda c: None),
]


def _valid_config(tmp_path: Path, pki: TestPki, daemon: str) -> Config:
    root = tmp_path / "valid"
    if daemon == "agent":
        (tmp_path / "photos").mkdir()
        path = write_agent_config(root, pki, "laptop", ["127.0.0.1:1"],
                                  [("photos", tmp_path / "photos")])
    else:
        path, _port = write_server_config(root, pki)
    loaded: Config = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.daemon}-{c.name.replace(' ', '_')}")
def test_config_error_names_file_key_and_expectation(
        case: Case, tmp_path: Path, pki: TestPki) -> None:
    """The daemon refuses the broken config with exit code 2, says which file, which key and
    what was expected, and starts nothing: no agent buffer, no server storage."""
    valid = _valid_config(tmp_path, pki, case.daemon)
    made_by_a_start = Path(valid["agent"]["buffer_path"] if case.daemon == "agent"
                           else valid["server"]["storage_path"])
    broken = case.breaks(valid)
    path = tmp_path / "bad.yaml"
    if isinstance(broken, str):
        path.write_text(broken, encoding="utf-8")
    elif broken is not None:
        path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    proc = run_cli(case.daemon, "--config", str(path), timeout_s=30)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert str(path) in proc.stderr, proc.stderr
    assert f": {case.key}: expected " in proc.stderr, proc.stderr
    assert case.expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not made_by_a_start.exists(), f"{made_by_a_start} exists: a daemon started"


def _demo_tree(root: Path) -> Path:
    """A copy of what `make run` uses, on free ports, sharing this interpreter's virtualenv."""
    (root / "scripts").mkdir(parents=True)
    for name in ("scripts/run-demo.sh", "scripts/make-sample-photos.py", "agent.yaml"):
        shutil.copy(REPO_ROOT / name, root / name)
    grpc_port, web_port = free_port(), free_port()
    server = (REPO_ROOT / "server.yaml").read_text(encoding="utf-8")
    (root / "server.yaml").write_text(
        server.replace("127.0.0.1:50051", f"127.0.0.1:{grpc_port}")
        .replace("web_ui_port: 8080", f"web_ui_port: {web_port}"), encoding="utf-8")
    agent = root / "agent.yaml"
    agent.write_text(agent.read_text(encoding="utf-8")
                     .replace("127.0.0.1:50051", f"127.0.0.1:{grpc_port}"), encoding="utf-8")
    (root / ".venv").symlink_to(Path(sys.prefix))
    (root / "tests").symlink_to(REPO_ROOT / "tests")  # the sample photo maker uses its helpers
    return root


def test_make_run_writes_admin_agent_yaml_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the whole group, as a terminal sends it) stops both daemons and the
    script exits 0 with a clean-stop line; admin-agent.yaml names the admin certificate and
    agent.yaml's server."""
    if not (Path(sys.prefix) / "bin" / "photonic").exists():
        pytest.skip("photonic is not installed in this interpreter's environment")
    root = _demo_tree(tmp_path / "repo")
    proc = subprocess.Popen(
        ["bash", "scripts/run-demo.sh"], cwd=root, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "Admin commands" in line:
                break
        assert seen and "Admin commands" in seen[-1], "".join(seen)
        for line in proc.stdout:  # the agent has synced the sample photos: a running daemon
            seen.append(line)
            if "to_state=monitoring" in line:
                break
        assert "to_state=monitoring" in seen[-1], "".join(seen)
        os.killpg(proc.pid, signal.SIGINT)
        rest = proc.stdout.read()
        assert proc.wait(timeout=60) == 0, rest
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert rest.rstrip().endswith("photonic stopped cleanly."), rest
    admin = load_agent_config(root / "admin-agent.yaml")
    laptop = load_agent_config(root / "agent.yaml")
    assert admin.agent_id == "admin"
    assert admin.security.cert_path == root / "certs" / "admin.crt"
    assert admin.server_endpoints == laptop.server_endpoints
