"""Every config error stops `photonic agent` / `photonic server` before anything starts, with
the file, the dotted key and what was expected on stderr, and exit code 2."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.daemons import run_cli, write_agent_config, write_server_config
from tests.support.pki import TestPki

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
