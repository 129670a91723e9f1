"""Tests for photonic.config: YAML to frozen dataclasses, or one error listing every problem."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from photonic.config import (
    AgentConfig,
    JobsConfig,
    ServerConfig,
    load_agent_config,
    load_server_config,
)
from photonic.errors import ConfigError, ConfigProblem
from photonic.models import ConflictPolicy, Scope, SyncMethod, WatchMode

REPO_ROOT = Path(__file__).resolve().parents[2]

MINIMAL_AGENT = """\
agent:
  id: laptop
  server_endpoints: [127.0.0.1:50051]
  buffer_path: buffer
  watch:
    - path: photos
security:
  cert_path: certs/laptop.crt
  key_path: certs/laptop.key
  ca_path: certs/ca.crt
"""

MINIMAL_SERVER = """\
server:
  storage_path: store
security:
  cert_path: certs/server.crt
  key_path: certs/server.key
  ca_path: certs/ca.crt
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def agent_problems(tmp_path: Path, text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_agent_config(write(tmp_path, text))
    return caught.value.problems


def server_problems(tmp_path: Path, text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_server_config(write(tmp_path, text))
    return caught.value.problems


def by_key(problems: list[ConfigProblem]) -> dict[str, ConfigProblem]:
    return {p.key: p for p in problems}


def with_agent_keys(extra: str, section: str = "agent") -> str:
    """MINIMAL_AGENT with `extra` (already indented two spaces) appended to `section`."""
    if section == "agent":
        return MINIMAL_AGENT.replace("security:\n", extra + "security:\n", 1)
    return MINIMAL_AGENT + f"{section}:\n{extra}"


# --- the repository's example files ---------------------------------------------------------


def test_repo_agent_yaml_loads_as_the_make_run_example() -> None:
    """The agent.yaml at the repo root loads and describes the documented demo agent."""
    config = load_agent_config(REPO_ROOT / "agent.yaml")
    assert config.agent_id == "laptop"
    assert config.server_endpoints == ("127.0.0.1:50051",)
    assert config.buffer_path == REPO_ROOT / "var" / "agent-buffer"
    assert [(w.path, w.name, w.mode) for w in config.watches] == [
        (REPO_ROOT / "var" / "sample-photos", "sample", WatchMode.REFERENCE)
    ]
    assert config.security.cert_path == REPO_ROOT / "certs" / "laptop.crt"
    assert config.security.key_path == REPO_ROOT / "certs" / "laptop.key"
    assert config.security.ca_path == REPO_ROOT / "certs" / "ca.crt"


def test_repo_server_yaml_loads_as_the_make_run_example() -> None:
    """The server.yaml at the repo root loads and describes the documented demo server."""
    config = load_server_config(REPO_ROOT / "server.yaml")
    assert config.bind_address == "127.0.0.1:50051"
    assert config.storage_path == REPO_ROOT / "var" / "server"
    assert config.web_ui_port == 8080
    assert config.security.cert_path == REPO_ROOT / "certs" / "server.crt"
    assert config.agent_scopes == {"laptop": {Scope.SYNC}, "admin": {Scope.ADMIN}}


# --- defaults and paths ---------------------------------------------------------------------


def test_minimal_agent_config_gets_every_documented_default(tmp_path: Path) -> None:
    """Keys left out take the defaults the brief and the example file document."""
    config = load_agent_config(write(tmp_path, MINIMAL_AGENT))
    assert config.max_buffer_size_bytes == 10 * 10**9
    assert config.ignore_patterns == ()
    assert (config.settle_delay_s, config.incomplete_timeout_s) == (2.0, 600.0)
    assert (config.rescan_interval_s, config.shoot_gap_s) == (300.0, 7200.0)
    assert config.metrics_port == 0
    assert config.max_bandwidth_bytes_per_s == 0
    assert (config.compression, config.compression_min_saving) == ("adaptive", 0.05)
    assert (config.parallel_transfers, config.chunk_size_bytes) == (4, 4 * 1024 * 1024)
    assert (config.batch_size, config.retry_attempts) == (200, 10)
    assert config.conflict_resolution is ConflictPolicy.AUTO
    assert config.security.revocation_list_path is None
    assert config.watches[0].mode is WatchMode.REFERENCE


def test_minimal_server_config_gets_every_documented_default(tmp_path: Path) -> None:
    """Server keys left out take their documented defaults; unknown agents get [sync]."""
    config = load_server_config(write(tmp_path, MINIMAL_SERVER))
    assert (config.bind_address, config.web_ui_bind, config.web_ui_port) == (
        "127.0.0.1:50051", "127.0.0.1", 8080)
    assert (config.nfs_export, config.deduplication, config.storage_compression) == (
        False, True, False)
    assert config.backup_nodes == ()
    assert config.min_free_bytes == 10**9
    assert config.sync_method is SyncMethod.AUTO
    assert (config.max_agents, config.max_concurrent_syncs) == (100, 16)
    assert config.max_transfer_size_bytes == 100 * 10**9
    assert config.agent_scopes == {}
    assert config.default_scopes == frozenset({Scope.SYNC})
    assert config.security.revocation_list_path is None


def test_relative_paths_resolve_against_the_config_folder_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative paths are joined to the config file's folder, whatever the working directory."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(tmp_path / "etc", MINIMAL_AGENT.replace("buffer_path: buffer",
                                                         "buffer_path: ./a/../buffer"))
    config = load_agent_config(path)
    assert config.config_path == path
    assert config.buffer_path == tmp_path / "etc" / "buffer"
    assert config.watches[0].path == tmp_path / "etc" / "photos"
    assert config.security.ca_path == tmp_path / "etc" / "certs" / "ca.crt"


def test_relative_config_path_argument_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config named by a relative path still yields absolute paths everywhere."""
    write(tmp_path, MINIMAL_SERVER, "server.yaml")
    monkeypatch.chdir(tmp_path)
    config = load_server_config(Path("server.yaml"))
    assert config.config_path == tmp_path / "server.yaml"
    assert config.storage_path == tmp_path / "store"


def test_absolute_and_home_paths_are_kept_and_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Absolute paths stay as written and `~` expands to the home folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    text = MINIMAL_AGENT.replace("buffer_path: buffer", "buffer_path: ~/buf").replace(
        "- path: photos", "- path: /srv/photos")
    config = load_agent_config(write(tmp_path, text))
    assert config.buffer_path == tmp_path / "home" / "buf"
    assert config.watches[0].path == Path("/srv/photos")


def test_configs_are_frozen(tmp_path: Path) -> None:
    """Loaded configs cannot be changed afterwards, including the scope mapping."""
    agent = load_agent_config(write(tmp_path, MINIMAL_AGENT, "a.yaml"))
    server = load_server_config(write(tmp_path, MINIMAL_SERVER + "agents: {x: {scopes: [sync]}}",
                                      "s.yaml"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        agent.agent_id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        server.agent_scopes["y"] = frozenset()  # type: ignore[index]
    assert isinstance(agent, AgentConfig) and isinstance(server, ServerConfig)


# --- agent values ---------------------------------------------------------------------------


def test_agent_values_in_units_are_parsed(tmp_path: Path) -> None:
    """Sizes, rates and durations written with units arrive in bytes, bytes/s and seconds."""
    text = with_agent_keys(
        "  max_buffer_size: 1.5GiB\n  settle_delay: 500ms\n  incomplete_timeout: 1h30m\n"
        "  rescan_interval: 90\n  metrics_port: 9100\n  ignore: ['*.tmp', 'cache/']\n"
    ) + textwrap.dedent("""\
        network:
          max_bandwidth: 100Mbit/s
          compression: always
          compression_min_saving: 0.2
          parallel_transfers: 8
          chunk_size: 256KiB
        sync:
          batch_size: 50
          retry_attempts: 3
          conflict_resolution: server_wins
          shoot_gap: 45m
        """)
    config = load_agent_config(write(tmp_path, text))
    assert config.max_buffer_size_bytes == 1536 * 1024**2
    assert (config.settle_delay_s, config.incomplete_timeout_s) == (0.5, 5400.0)
    assert config.rescan_interval_s == 90.0
    assert config.metrics_port == 9100
    assert config.ignore_patterns == ("*.tmp", "cache/")
    assert config.max_bandwidth_bytes_per_s == 12_500_000
    assert (config.compression, config.compression_min_saving) == ("always", 0.2)
    assert (config.parallel_transfers, config.chunk_size_bytes) == (8, 256 * 1024)
    assert (config.batch_size, config.retry_attempts, config.shoot_gap_s) == (50, 3, 2700.0)
    assert config.conflict_resolution is ConflictPolicy.SERVER_WINS


@pytest.mark.parametrize(("yaml_value", "mode"), [("true", "adaptive"), ("false", "never"),
                                                  ("on", "adaptive"), ("never", "never")])
def test_compression_accepts_yaml_booleans(tmp_path: Path, yaml_value: str, mode: str) -> None:
    """`compression: true/false` (YAML booleans) mean adaptive and never."""
    text = with_agent_keys(f"  compression: {yaml_value}\n", "network")
    assert load_agent_config(write(tmp_path, text)).compression == mode


def test_endpoints_accept_hostnames_ipv4_and_bracketed_ipv6(tmp_path: Path) -> None:
    """Endpoints are host:port with the host a name, an IPv4 or a bracketed IPv6 address."""
    text = MINIMAL_AGENT.replace(
        "[127.0.0.1:50051]", "[nas.local:50051, '10.0.0.2:443', '[::1]:50051']")
    config = load_agent_config(write(tmp_path, text))
    assert config.server_endpoints == ("nas.local:50051", "10.0.0.2:443", "[::1]:50051")


def test_watch_defaults_name_to_folder_and_accepts_bare_paths(tmp_path: Path) -> None:
    """A watch without a name takes its folder's name; a bare string is a watch path."""
    text = MINIMAL_AGENT.replace(
        "    - path: photos\n",
        "    - path: photos\n    - /media/card/DCIM\n    - {path: x, name: card, mode: ingest}\n")
    watches = load_agent_config(write(tmp_path, text)).watches
    assert [(w.name, w.mode) for w in watches] == [
        ("photos", WatchMode.REFERENCE), ("DCIM", WatchMode.REFERENCE), ("card", WatchMode.INGEST)]


@pytest.mark.parametrize(
    ("extra", "section", "key", "expected_fragment"),
    [
        ("  max_buffer_size: 10 parsecs\n", "agent", "agent.max_buffer_size", "a size like 1.5TB"),
        ("  settle_delay: soon\n", "agent", "agent.settle_delay", "a duration like 45s"),
        ("  rescan_interval: 0\n", "agent", "agent.rescan_interval", "at least 1s"),
        ("  metrics_port: '9100'\n", "agent", "agent.metrics_port", "whole number from 0 to 65535"),
        ("  metrics_port: 70000\n", "agent", "agent.metrics_port", "from 0 to 65535"),
        ("  ignore: ['']\n", "agent", "agent.ignore[0]", "gitignore-style pattern"),
        ("  max_bandwidth: fast\n", "network", "network.max_bandwidth", "a rate like 100MB/s"),
        ("  max_bandwidth: 100MB\n", "network", "network.max_bandwidth",
         "not a size: did you mean 100MB/s?"),
        ("  compression: 'yes'\n", "network", "network.compression",
         "one of: adaptive, always, never"),
        ("  compression_min_saving: 0.95\n", "network", "network.compression_min_saving",
         "from 0.0 to 0.9"),
        ("  parallel_transfers: true\n", "network", "network.parallel_transfers", "1 to 64"),
        ("  parallel_transfers: 65\n", "network", "network.parallel_transfers", "1 to 64"),
        ("  chunk_size: 8MiB\n", "network", "network.chunk_size", "64KiB to 4MiB"),
        ("  chunk_size: 1KiB\n", "network", "network.chunk_size", "64KiB to 4MiB"),
        ("  batch_size: 0\n", "sync", "sync.batch_size", "1 to 10000"),
        ("  retry_attempts: 2.5\n", "sync", "sync.retry_attempts", "1 to 1000"),
        ("  conflict_resolution: newest\n", "sync", "sync.conflict_resolution",
         "one of: auto, manual, server_wins"),
        ("  shoot_gap: -1h\n", "sync", "sync.shoot_gap", "a duration"),
    ],
)
def test_each_bad_agent_value_names_its_key_and_expectation(
    tmp_path: Path, extra: str, section: str, key: str, expected_fragment: str
) -> None:
    """A wrong value is reported under its dotted key with what was expected and what was got."""
    problems = agent_problems(tmp_path, with_agent_keys(extra, section))
    assert [p.key for p in problems] == [key]
    assert expected_fragment in problems[0].expected
    assert problems[0].got


@pytest.mark.parametrize(
    ("replacement", "key", "expected_fragment"),
    [
        ("id: 'bad id'", "agent.id", "an agent id"),
        ("id: ..", "agent.id", "an agent id"),
        ("server_endpoints: [localhost]", "agent.server_endpoints[0]", "host:port"),
        ("server_endpoints: ['h:0']", "agent.server_endpoints[0]", "port 1-65535"),
        ("server_endpoints: ['::1:50051']", "agent.server_endpoints[0]", "[::1]:50051"),
        ("server_endpoints: ['[nope]:1']", "agent.server_endpoints[0]", "host:port"),
        ("server_endpoints: []", "agent.server_endpoints", "non-empty list"),
        ("server_endpoints: 127.0.0.1:50051", "agent.server_endpoints", "a list"),
        ("buffer_path: ''", "agent.buffer_path", "a path"),
        ("- path: photos", "agent.watch[0].path", "a path"),
    ],
)
def test_bad_identity_endpoints_and_paths_are_reported(
    tmp_path: Path, replacement: str, key: str, expected_fragment: str
) -> None:
    """Agent ids, endpoint addresses and paths are checked before anything starts."""
    if replacement.startswith("- path"):
        text = MINIMAL_AGENT.replace("- path: photos", "- path: ''")
    else:
        name = replacement.split(":")[0]
        original = next(line for line in MINIMAL_AGENT.splitlines()
                        if line.strip().startswith(name))
        text = MINIMAL_AGENT.replace(original, "  " + replacement)
    problems = agent_problems(tmp_path, text)
    assert [p.key for p in problems] == [key]
    assert expected_fragment in problems[0].expected


def test_missing_required_keys_are_each_reported(tmp_path: Path) -> None:
    """A config with only an agent id lists every missing required key, not just the first."""
    problems = agent_problems(tmp_path, "agent:\n  id: laptop\n")
    assert set(by_key(problems)) == {
        "agent.server_endpoints", "agent.buffer_path", "agent.watch",
        "security.cert_path", "security.key_path", "security.ca_path"}
    assert all("missing" in p.got for p in problems)


def test_watch_names_must_be_unique_and_safe(tmp_path: Path) -> None:
    """Two watches sharing a library name, or a name with '/' or '..', are refused."""
    text = MINIMAL_AGENT.replace("    - path: photos\n", textwrap.indent(textwrap.dedent("""\
        - {path: a, name: same}
        - {path: b, name: same}
        - {path: c, name: 'x/y'}
        - {path: d, name: '..'}
        - {path: e, mode: copy}
        - /
        """), "    "))
    problems = by_key(agent_problems(tmp_path, text))
    assert "already used by agent.watch[0]" in problems["agent.watch[1].name"].expected
    assert "no '/'" in problems["agent.watch[2].name"].expected
    assert "not '.' or '..'" in problems["agent.watch[3].name"].expected
    assert "reference, ingest" in problems["agent.watch[4].mode"].expected
    assert "none can be derived" in problems["agent.watch[5].name"].expected


def test_overlapping_watch_folders_are_refused(tmp_path: Path) -> None:
    """A watch inside another (or the same folder twice) would upload files twice."""
    text = MINIMAL_AGENT.replace("    - path: photos\n",
                                 "    - path: photos\n    - {path: photos/2024, name: y2024}\n")
    problems = agent_problems(tmp_path, text)
    assert [p.key for p in problems] == ["agent.watch[1].path"]
    assert "does not overlap agent.watch[0].path" in problems[0].expected


def test_empty_or_wrongly_typed_watch_list_is_reported(tmp_path: Path) -> None:
    """`watch` must be a non-empty list of mappings or paths."""
    for value, fragment in (("[]", "at least one folder"), ("photos", "a list"),
                            ("[[a]]", "a mapping")):
        problems = agent_problems(tmp_path, MINIMAL_AGENT.replace(
            "  watch:\n    - path: photos\n", f"  watch: {value}\n"))
        assert len(problems) == 1 and fragment in problems[0].expected, value


def test_incomplete_timeout_must_exceed_settle_delay(tmp_path: Path) -> None:
    """An incomplete-file timeout shorter than the settle delay could never fire sensibly."""
    problems = agent_problems(
        tmp_path, with_agent_keys("  settle_delay: 30s\n  incomplete_timeout: 10s\n"))
    assert [p.key for p in problems] == ["agent.incomplete_timeout"]
    assert "longer than agent.settle_delay (30s)" in problems[0].expected


def test_revocation_list_is_a_server_only_key(tmp_path: Path) -> None:
    """An agent config naming a revocation list is told that only the server reads one."""
    problems = agent_problems(tmp_path, MINIMAL_AGENT + "  revocation_list: revoked.txt\n")
    assert [p.key for p in problems] == ["security.revocation_list"]
    assert "only the server" in problems[0].expected


# --- unknown keys ---------------------------------------------------------------------------


def test_unknown_key_close_to_a_known_one_suggests_it(tmp_path: Path) -> None:
    """A misspelt key is a problem whose expectation says "did you mean" the right name."""
    problems = agent_problems(tmp_path, with_agent_keys("  max_bandwith: 5MB/s\n", "network"))
    assert [p.key for p in problems] == ["network.max_bandwith"]
    assert "did you mean max_bandwidth?" in problems[0].expected


def test_known_key_in_the_wrong_section_points_to_the_right_one(tmp_path: Path) -> None:
    """A key placed in the wrong section is pointed to the section where it belongs."""
    problems = agent_problems(tmp_path, with_agent_keys("  max_bandwidth: 5MB/s\n"))
    assert [p.key for p in problems] == ["agent.max_bandwidth"]
    assert "did you mean network.max_bandwidth?" in problems[0].expected


def test_unknown_key_far_from_any_lists_the_known_ones(tmp_path: Path) -> None:
    """With no close match, the expectation lists the keys that section knows."""
    problems = agent_problems(tmp_path, MINIMAL_AGENT + "colour: blue\n")
    assert [p.key for p in problems] == ["colour"]
    assert "agent, network, security, sync" in problems[0].expected


def test_unknown_keys_inside_list_entries_are_reported(tmp_path: Path) -> None:
    """Keys inside a watch entry and inside an agents entry are checked too."""
    agent = agent_problems(tmp_path, MINIMAL_AGENT.replace("- path: photos",
                                                           "- {path: photos, nmae: p}"))
    assert [(p.key, "did you mean name?" in p.expected) for p in agent] == [
        ("agent.watch[0].nmae", True)]
    server = server_problems(tmp_path, MINIMAL_SERVER + "agents:\n  desk: {scope: [sync]}\n")
    assert {p.key for p in server} == {"agents.desk.scopes", "agents.desk.scope"}
    assert "did you mean scopes?" in by_key(server)["agents.desk.scope"].expected


# --- several problems at once ---------------------------------------------------------------


def test_every_problem_is_reported_together_with_file_key_and_expectation(
    tmp_path: Path,
) -> None:
    """One load reports all problems; each line names the file, the dotted key and the need."""
    text = textwrap.dedent("""\
        agent:
          id: "bad id"
          server_endpoints: [localhost]
          buffer_path: buf
          max_buffer_size: lots
          watch: [{path: p, mode: copy}]
        network:
          chunk_size: 8MiB
          max_bandwith: 1MB/s
        sync:
          batch_size: "200"
        security:
          cert_path: c.crt
          key_path: c.key
        """)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_agent_config(path)
    expected_keys = {
        "agent.id", "agent.server_endpoints[0]", "agent.max_buffer_size", "agent.watch[0].mode",
        "network.chunk_size", "network.max_bandwith", "sync.batch_size", "security.ca_path"}
    assert {p.key for p in caught.value.problems} == expected_keys
    lines = str(caught.value).splitlines()
    assert len(lines) == len(expected_keys)
    for line, problem in zip(lines, caught.value.problems, strict=True):
        assert line.startswith(f"{path}: {problem.key}: expected {problem.expected}")
    assert "got '200' (a string)" in str(caught.value)


# --- files that cannot be read --------------------------------------------------------------


def test_missing_file_is_one_clear_problem(tmp_path: Path) -> None:
    """A config path that does not exist is reported as such, naming the file."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_agent_config(path)
    assert caught.value.problems == [ConfigProblem(str(path), "(file)", "an existing config file",
                                                   "no such file")]


def test_directory_and_binary_files_are_unreadable_configs(tmp_path: Path) -> None:
    """A directory or a non-UTF-8 file yields a readable-file problem, not a traceback."""
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "bin.yaml").write_bytes(b"agent:\n  id: \xff\xfe\n")
    for name in ("dir.yaml", "bin.yaml"):
        with pytest.raises(ConfigError) as caught:
            load_server_config(tmp_path / name)
        assert [p.expected for p in caught.value.problems] == ["a readable UTF-8 config file"]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    """Broken YAML is reported with the line and column where the parser stopped."""
    problems = agent_problems(tmp_path, "agent:\n  id: laptop\n  watch: [a, b\nsecurity: {}\n")
    assert len(problems) == 1
    assert problems[0].key.startswith("line 4")
    assert problems[0].expected == "valid YAML"


@pytest.mark.parametrize(("text", "got"), [("", "an empty file"), ("- a\n- b\n", "a list"),
                                           ("just text\n", "'just text' (a string)")])
def test_top_level_must_be_a_mapping_of_sections(tmp_path: Path, text: str, got: str) -> None:
    """An empty file or a top level that is not a mapping says which sections are expected."""
    problems = server_problems(tmp_path, text)
    assert [(p.key, p.got) for p in problems] == [("(file)", got)]
    assert "server, storage, limits, security" in problems[0].expected


def test_duplicate_keys_are_reported_with_their_line(tmp_path: Path) -> None:
    """A key written twice, which YAML would silently overwrite, is a problem with its line."""
    text = MINIMAL_AGENT.replace("  buffer_path: buffer\n", "  buffer_path: a\n  buffer_path: b\n")
    problems = agent_problems(tmp_path, text)
    assert [(p.key, p.got) for p in problems] == [("line 5", "a second 'buffer_path'")]


def test_sections_of_the_wrong_type_are_reported(tmp_path: Path) -> None:
    """A section that is not a mapping is named, and its required keys still reported."""
    problems = by_key(agent_problems(tmp_path, MINIMAL_AGENT + "network: [1, 2]\n"))
    assert "a mapping" in problems["network"].expected


# --- server ---------------------------------------------------------------------------------


def test_server_values_scopes_and_revocation_list_are_read(tmp_path: Path) -> None:
    """Server keys, per-agent scopes, empty default scopes and the revocation list all load."""
    text = textwrap.dedent("""\
        server:
          storage_path: store
          bind_address: '[::]:0'
          nfs_export: true
          web_ui_port: 0
          web_ui_bind: '::'
        storage:
          deduplication: false
          min_free_space: 5GiB
          sync_method: per-file
          backup_nodes: []
          compression: false
        limits: {max_agents: 3, max_concurrent_syncs: 2, max_transfer_size: 2TB}
        agents:
          laptop: {scopes: [sync]}
          mac-lightroom: {scopes: [sync, work]}
          root.admin: {scopes: [ADMIN]}
        default_scopes: []
        security:
          cert_path: certs/server.crt
          key_path: certs/server.key
          ca_path: certs/ca.crt
          revocation_list: certs/revoked.txt
        """)
    config = load_server_config(write(tmp_path, text))
    assert (config.bind_address, config.nfs_export, config.web_ui_port) == ("[::]:0", True, 0)
    assert (config.web_ui_bind, config.deduplication) == ("::", False)
    assert config.min_free_bytes == 5 * 1024**3
    assert config.sync_method is SyncMethod.PER_FILE
    assert (config.max_agents, config.max_concurrent_syncs) == (3, 2)
    assert config.max_transfer_size_bytes == 2 * 10**12
    assert config.agent_scopes == {
        "laptop": {Scope.SYNC}, "mac-lightroom": {Scope.SYNC, Scope.WORK},
        "root.admin": {Scope.ADMIN}}
    assert config.default_scopes == frozenset()
    assert config.security.revocation_list_path == tmp_path / "certs" / "revoked.txt"


def test_unimplemented_storage_features_are_refused_with_the_reason(tmp_path: Path) -> None:
    """At-rest compression is refused, saying why."""
    problems = by_key(server_problems(tmp_path, MINIMAL_SERVER + "storage: {compression: true}\n"))
    assert problems["storage.compression"].expected.startswith(
        "false (at-rest compression is not implemented")


def test_an_encrypted_backup_node_needs_a_readable_archive_key(tmp_path: Path) -> None:
    """Without the key file the config names security.archive_key_path, where it looked (beside
    the server certificate by default) and the command that makes one; with it, it loads."""
    text = MINIMAL_SERVER + ("storage: {backup_nodes: [{name: b1, endpoint: 'b1:50051', "
                             "encrypted: true}]}\n")
    problem = by_key(server_problems(tmp_path, text))["security.archive_key_path"]
    assert "photonic certs archive-key" in problem.expected and "back it up" in problem.expected
    key_file = tmp_path / "certs" / "archive.key"
    assert problem.got == f"{key_file}: no such file"
    key_file.parent.mkdir(exist_ok=True)
    key_file.write_bytes(bytes(32))
    config = load_server_config(write(tmp_path, text))
    assert config.backup_nodes[0].encrypted and config.security.archive_key_path == key_file


@pytest.mark.parametrize(
    ("extra", "key", "expected_fragment"),
    [
        ("server: {storage_path: s, nfs_export: 'yes'}\n", "server.nfs_export", "true or false"),
        ("server: {storage_path: s, bind_address: '0.0.0.0'}\n", "server.bind_address",
         "host:port"),
        ("server: {storage_path: s, web_ui_bind: 'a b'}\n", "server.web_ui_bind", "host name"),
        ("storage: {min_free_space: -1GB}\n", "storage.min_free_space", "a size"),
        ("storage: {deduplication: 1}\n", "storage.deduplication", "true or false"),
        ("storage: {sync_method: syncfs}\n", "storage.sync_method", "one of: auto, per-file"),
        ("limits: {max_agents: 0}\n", "limits.max_agents", "from 1"),
        ("limits: {max_transfer_size: 0}\n", "limits.max_transfer_size", "a size"),
        ("agents: {'bad/id': {scopes: [sync]}}\n", "agents.bad/id", "an agent id"),
        ("agents: {laptop: {scopes: [root]}}\n", "agents.laptop.scopes[0]",
         "one of: sync, work, admin"),
        ("agents: {laptop: [sync]}\n", "agents.laptop", "a mapping"),
        ("agents: {123: {scopes: [sync]}}\n", "agents.123", "quote it"),
        ("default_scopes: [everything]\n", "default_scopes[0]", "one of: sync, work, admin"),
    ],
)
def test_each_bad_server_value_names_its_key_and_expectation(
    tmp_path: Path, extra: str, key: str, expected_fragment: str
) -> None:
    """Wrong server values, bad agent ids and unknown scopes are reported under their keys."""
    base = MINIMAL_SERVER if extra.startswith(("agents", "default", "limits", "storage")) \
        else MINIMAL_SERVER.replace("server:\n  storage_path: store\n", "")
    problems = server_problems(tmp_path, base + extra)
    assert key in by_key(problems), problems
    assert expected_fragment in by_key(problems)[key].expected


# --- sync stream budgets ----------------------------------------------------------------------


def test_sync_budgets_have_documented_defaults(tmp_path: Path) -> None:
    """Left out, the stream budgets take the defaults server.yaml documents, and the repo's
    server.yaml states exactly those."""
    for config in (load_server_config(write(tmp_path, MINIMAL_SERVER)),
                   load_server_config(REPO_ROOT / "server.yaml")):
        assert config.max_syncs_per_agent == 4
        assert config.max_stream_memory_bytes == 64 * 1024**2
        assert config.max_sync_memory_bytes == 512 * 1024**2
        assert config.sync_idle_timeout_s == 300.0
        assert (config.max_connection_age_s, config.max_connection_age_grace_s) == (3600.0, 60.0)


def test_sync_budgets_are_read_in_their_units(tmp_path: Path) -> None:
    """Sizes and durations of the budgets are parsed into bytes and seconds."""
    config = load_server_config(write(tmp_path, MINIMAL_SERVER + textwrap.dedent("""\
        limits:
          max_syncs_per_agent: 2
          max_stream_memory: 48MiB
          max_sync_memory: 1GiB
          sync_idle_timeout: 90s
          max_connection_age: 30m
          max_connection_age_grace: 0
        """)))
    assert config.max_syncs_per_agent == 2
    assert (config.max_stream_memory_bytes, config.max_sync_memory_bytes) == (48 << 20, 1 << 30)
    assert config.sync_idle_timeout_s == 90.0
    assert (config.max_connection_age_s, config.max_connection_age_grace_s) == (1800.0, 0.0)


@pytest.mark.parametrize(
    ("limits", "key", "expected_fragment"),
    [
        ("{max_syncs_per_agent: 0}", "limits.max_syncs_per_agent", "from 1"),
        ("{max_syncs_per_agent: many}", "limits.max_syncs_per_agent", "a whole number"),
        ("{max_stream_memory: 16MiB}", "limits.max_stream_memory", "at least 32MiB"),
        ("{max_stream_memory: lots}", "limits.max_stream_memory", "a size"),
        ("{max_sync_memory: 1MB}", "limits.max_sync_memory", "at least 32MiB"),
        ("{max_stream_memory: 128MiB, max_sync_memory: 64MiB}", "limits.max_sync_memory",
         "at least limits.max_stream_memory"),
        ("{sync_idle_timeout: 500ms}", "limits.sync_idle_timeout", "at least 1s"),
        ("{sync_idle_timeout: soon}", "limits.sync_idle_timeout", "a duration"),
        ("{max_connection_age: 5s}", "limits.max_connection_age", "at least 10s"),
        ("{max_connection_age_grace: -1s}", "limits.max_connection_age_grace", "a duration"),
        ("{max_stream_memori: 64MiB}", "limits.max_stream_memori", "max_stream_memory"),
    ],
)
def test_each_bad_sync_budget_names_its_key_and_expectation(
    tmp_path: Path, limits: str, key: str, expected_fragment: str
) -> None:
    """A wrong budget is reported under its key, in the file, with what was expected (a
    misspelt key suggests the right one)."""
    problems = server_problems(tmp_path, MINIMAL_SERVER + f"limits: {limits}\n")
    assert key in by_key(problems), problems
    problem = by_key(problems)[key]
    assert expected_fragment in problem.expected + problem.got, problem
    assert problem.file.endswith("config.yaml")


# --- jobs (server) and work (agent) sections ------------------------------------------------


def test_jobs_section_defaults_match_the_documented_ones(tmp_path: Path) -> None:
    """Without a jobs: section the server gets the lease, timeout and ZIP limits it documents."""
    jobs = load_server_config(write(tmp_path, MINIMAL_SERVER)).jobs
    assert jobs == JobsConfig()
    assert (jobs.heartbeat_s, jobs.lease_s, jobs.max_attempts) == (5.0, 15.0, 3)
    assert (jobs.timeout_floor_s, jobs.timeout_ceiling_s, jobs.timeout_p95_factor) == (
        60.0, 3600.0, 3.0)
    assert (jobs.timeout_per_megabyte_s, jobs.timeout_per_megapixel_s) == (2.0, 1.0)
    assert (jobs.max_zip_bytes, jobs.max_zip_entries) == (2 * 1024**3, 5000)
    assert (jobs.max_zip_uncompressed_bytes, jobs.max_zip_ratio) == (8 * 1024**3, 200.0)
    assert (jobs.max_batch_children, jobs.cancel_grace_s) == (100_000, 10.0)


def test_jobs_values_are_read_in_their_units(tmp_path: Path) -> None:
    """Every jobs: key is read, durations and sizes in the units the other sections use."""
    jobs = load_server_config(write(tmp_path, MINIMAL_SERVER + """\
jobs:
  heartbeat: 2s
  lease: 1m
  max_attempts: 5
  timeout_floor: 30s
  timeout_ceiling: 2h
  timeout_p95_factor: 4
  timeout_per_megabyte: 500ms
  timeout_per_megapixel: 3s
  max_zip_size: 1GB
  max_zip_entries: 10
  max_zip_uncompressed: 4GiB
  max_zip_ratio: 50
  max_batch_children: 7
  cancel_grace: 20s
""")).jobs
    assert jobs == JobsConfig(
        heartbeat_s=2.0, lease_s=60.0, max_attempts=5, timeout_floor_s=30.0,
        timeout_ceiling_s=7200.0, timeout_p95_factor=4.0, timeout_per_megabyte_s=0.5,
        timeout_per_megapixel_s=3.0, max_zip_bytes=10**9, max_zip_entries=10,
        max_zip_uncompressed_bytes=4 * 1024**3, max_zip_ratio=50.0, max_batch_children=7,
        cancel_grace_s=20.0)


def test_bad_jobs_values_are_all_reported_with_their_keys(tmp_path: Path) -> None:
    """Each wrong jobs: value, a lease not longer than the beat and an unknown key are
    reported together, each under its dotted key."""
    problems = by_key(server_problems(tmp_path, MINIMAL_SERVER + """\
jobs:
  heartbeat: 20s
  max_attempts: 0
  max_zip_size: lots
  max_zip_ratio: -1
  timeout_floor: 2h
  timeout_ceiling: 1h
  leese: 30s
"""))
    assert set(problems) == {"jobs.heartbeat", "jobs.max_attempts", "jobs.max_zip_size",
                             "jobs.max_zip_ratio", "jobs.timeout_ceiling", "jobs.leese"}
    assert "longer than jobs.heartbeat" in problems["jobs.heartbeat"].expected
    assert "a whole number from 1" in problems["jobs.max_attempts"].expected
    assert "a size" in problems["jobs.max_zip_size"].expected
    assert "at least jobs.timeout_floor" in problems["jobs.timeout_ceiling"].expected
    assert "did you mean lease?" in problems["jobs.leese"].expected


def test_web_upload_caps_are_read_and_a_wrong_one_names_its_key(tmp_path: Path) -> None:
    """jobs.web_upload_max (a size) and jobs.web_upload_max_files default to 2 GiB and 1000;
    a wrong value is reported under its key, in the file, with what was expected."""
    assert (JobsConfig().web_upload_max_bytes, JobsConfig().web_upload_max_files) == (
        2 * 1024**3, 1000)
    jobs = load_server_config(write(tmp_path, MINIMAL_SERVER + """\
jobs:
  web_upload_max: 512MiB
  web_upload_max_files: 20
""")).jobs
    assert (jobs.web_upload_max_bytes, jobs.web_upload_max_files) == (512 * 1024**2, 20)
    problems = by_key(server_problems(tmp_path, MINIMAL_SERVER + """\
jobs:
  web_upload_max: huge
  web_upload_max_files: 0
"""))
    assert "a size" in problems["jobs.web_upload_max"].expected
    assert "a whole number from 1" in problems["jobs.web_upload_max_files"].expected
    assert problems["jobs.web_upload_max"].file.endswith("config.yaml")


def test_work_section_defaults_leave_work_off(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Without work: an agent takes no jobs; models live in ~/.local/share/photonic/models."""
    monkeypatch.delenv("PHOTONIC_MODELS_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    work = load_agent_config(write(tmp_path, MINIMAL_AGENT)).work
    assert (work.enabled, work.executors, work.max_concurrent) == (False, None, 1)
    assert work.models_dir == Path.home() / ".local" / "share" / "photonic" / "models"
    assert (work.tags, work.memory_limit_bytes, work.grace_s) == ((), None, 10.0)
    assert work.options == {}


def test_models_dir_defaults_to_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$PHOTONIC_MODELS_DIR, the folder `photonic models fetch` uses, is the default too."""
    monkeypatch.setenv("PHOTONIC_MODELS_DIR", str(tmp_path / "m"))
    assert load_agent_config(write(tmp_path, MINIMAL_AGENT)).work.models_dir == tmp_path / "m"


def test_work_values_and_executor_options_are_read(tmp_path: Path) -> None:
    """Every work: key is read; executor subsections become options, their model path
    resolved against the config file's folder."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "seg.tflite").write_bytes(b"x")
    work = load_agent_config(write(tmp_path, MINIMAL_AGENT + """\
work:
  enabled: true
  executors: [bgremove, facecrop]
  max_concurrent: 3
  models_dir: models
  tags: [gpu, os=macos]
  memory_limit: 2GiB
  grace: 30s
  bgremove:
    model: models/seg.tflite
    threshold: 0.6
  facecrop:
    padding: [1, 2]
""")).work
    assert work.enabled and work.executors == ("bgremove", "facecrop")
    assert (work.max_concurrent, work.models_dir) == (3, tmp_path / "models")
    assert (work.tags, work.memory_limit_bytes, work.grace_s) == (
        ("gpu", "os=macos"), 2 * 1024**3, 30.0)
    assert work.options == {
        "bgremove": {"model": str(tmp_path / "models" / "seg.tflite"), "threshold": 0.6},
        "facecrop": {"padding": [1, 2]},
    }


def test_bad_work_values_are_all_reported_with_their_keys(tmp_path: Path) -> None:
    """Unknown executors (in the list or as a subsection) get a did-you-mean; a missing model
    file stops an enabled worker; bad values name their keys; all reported together."""
    problems = by_key(agent_problems(tmp_path, MINIMAL_AGENT + """\
work:
  enabled: yes please
  executors: [bgremove, upscale]
  max_concurrent: 0
  tags: ["has space"]
  grace: soon
  facecrap: {padding: 1}
  bgremove:
    model: missing.tflite
    nested: {a: 1}
"""))
    assert set(problems) == {"work.enabled", "work.executors[1]", "work.max_concurrent",
                             "work.tags[0]", "work.grace", "work.facecrap",
                             "work.bgremove.nested"}
    assert "one of: bgremove, facecrop, lightroom" in problems["work.executors[1]"].expected
    assert "did you mean facecrop?" in problems["work.facecrap"].expected
    assert "capability tag" in problems["work.tags[0]"].expected


def test_a_missing_model_file_is_refused_only_when_work_is_enabled(tmp_path: Path) -> None:
    """A model path must exist before the worker starts; a disabled worker may name one
    that is not fetched yet."""
    text = MINIMAL_AGENT + "work:\n  enabled: {}\n  bgremove: {{model: m/seg.tflite}}\n"
    problems = agent_problems(tmp_path, text.format("true"))
    assert [p.key for p in problems] == ["work.bgremove.model"]
    assert "an existing model file" in problems[0].expected
    work = load_agent_config(write(tmp_path, text.format("false"))).work
    assert work.options["bgremove"]["model"] == str(tmp_path / "m" / "seg.tflite")


def test_repo_yaml_files_document_the_jobs_and_work_defaults() -> None:
    """The example files' jobs: and work: sections state exactly the defaults."""
    assert load_server_config(REPO_ROOT / "server.yaml").jobs == JobsConfig()
    work = load_agent_config(REPO_ROOT / "agent.yaml").work
    assert (work.enabled, work.max_concurrent, work.tags, work.grace_s) == (False, 1, (), 10.0)


def test_work_lightroom_section_sets_the_bridge_port_and_client_timeout(tmp_path: Path) -> None:
    """`work.lightroom` takes the bridge's loopback port and how long a silent plugin is kept;
    other keys and bad values are reported with what was expected."""
    config = load_agent_config(write(tmp_path, MINIMAL_AGENT + textwrap.dedent("""\
        work:
          lightroom:
            port: 7788
            client_timeout: 2m
        """)))
    assert dict(config.work.options["lightroom"]) == {"port": 7788, "client_timeout_s": 120.0}
    problems = by_key(agent_problems(tmp_path, MINIMAL_AGENT + textwrap.dedent("""\
        work:
          lightroom:
            port: 0
            bogus: 1
        """)))
    assert "1 to 65535" in problems["work.lightroom.port"].expected
    assert "client_timeout" in problems["work.lightroom.bogus"].expected
