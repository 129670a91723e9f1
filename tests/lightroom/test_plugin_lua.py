"""Photonic.lrplugin under Debian's lua5.1: its JSON and backoff in pure Lua, then the whole
plugin (with the stub Lightroom SDK in tests/lightroom/sdk) against the real LightroomBridge:
develop/export end to end, a Lightroom error, a cancel, Lightroom killed mid-job, a bridge that
starts late; and `photonic lightroom install-plugin`."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from concurrent.futures import CancelledError
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from photonic.agent.executors.base import ExecutorError, HandBack
from photonic.cli import main
from photonic.lightroom.install import PLUGIN_DIR_NAME, PREFS_FILE_NAME, plugin_source
from tests.lightroom.harness import LUA, BridgeHandle, BridgeLoop, LuaPlugin
from tests.support.daemons import free_port, wait_until

pytestmark = pytest.mark.skipif(LUA is None, reason="lua5.1 is missing: run `make test-deps`")

PLUGIN = plugin_source()
JPEG_EXPORT = {"format": "JPEG", "long_edge": 40, "quality": 80, "color_space": "sRGB",
               "sharpening": "none", "metadata": "all"}


def run_lua(code: str, stdin: str = "") -> str:
    assert LUA is not None
    done = subprocess.run([LUA, "-e", f"package.path = '{PLUGIN}/?.lua;' .. package.path",
                           "-e", code], input=stdin, capture_output=True, text=True,
                          timeout=20, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


# Pure Lua ------------------------------------------------------------------------------------

ROUND_TRIP_VALUES: list[object] = [
    {}, [], "", "plain", 'quote " backslash \\ slash /', "\b\f\n\r\t\x00\x1f\x7f",
    "café ☃ 😀 \u2028", 0, -1, 123456789012, 3.5, -0.25, 1e-7, 6.02e23, True, False, None,
    [1, [2, [3, []]], {"a": None}], {"nested": {"list": [True, "x", 1.5], "empty": {}}},
    {"job_id": "j-1", "outputs": ["/tmp/a b/ü.jpg"], "fraction": 0.75},
]


def test_json_round_trips_every_kind_of_value() -> None:
    """Json.lua decodes what Python's json writes (ASCII-escaped or raw UTF-8) and encodes it
    back to an equal value: objects, arrays (empty ones stay arrays), escapes, \\u sequences
    with surrogate pairs, numbers, booleans and null."""
    lines = [json.dumps(v, ensure_ascii=ascii) for v in ROUND_TRIP_VALUES
             for ascii in (True, False)]
    out = run_lua("local J = require 'Json'\n"
                  "for line in io.lines() do print(J.encode(J.decode(line))) end",
                  "\n".join(lines) + "\n")
    back = [json.loads(line) for line in out.split("\n")[:-1]]  # not splitlines: U+2028
    assert back == [json.loads(line) for line in lines]


def test_json_encodes_lua_tables_as_the_bridge_expects() -> None:
    """Sequences become arrays, other tables objects, Json.null null; control characters are
    escaped; a float keeps every digit."""
    out = run_lua("local J = require 'Json'\n"
                  "print(J.encode({type = 'job_completed', outputs = J.array({}), n = 0.1,"
                  " list = {1, 'two', J.null}, text = 'tab\\there\\1'}))")
    assert json.loads(out) == {"type": "job_completed", "outputs": [], "n": 0.1,
                               "list": [1, "two", None], "text": "tab\there\x01"}


@pytest.mark.parametrize("text", ["01", "1.", ".5", "-", "1e", "[1,]", "{\"a\"}", "{\"a\":1,}",
                                  "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"a\nb\"", "tru",
                                  "nul", "[1 2]", "\"open", "", "{} x"])
def test_json_refuses_what_is_not_json(text: str) -> None:
    """Malformed JSON (leading zeros, trailing commas, bad escapes, lone surrogates, raw
    control characters, trailing text) is an error naming the position, never a value."""
    out = run_lua("local J = require 'Json'\n"
                  "local ok, err = pcall(J.decode, io.read('*a'))\n"
                  "print(ok, err)", text)
    assert out.startswith("false\tJson.decode: "), out
    assert "at character" in out


def test_backoff_doubles_from_one_second_to_sixty_with_jitter() -> None:
    """The n-th delay lies in [d/2, d] for d = min(60, 2^(n-1)): the lowest and highest
    random draws give exactly those bounds; the default draw stays inside them."""
    out = run_lua("local B = require 'Backoff'\n"
                  "for n = 1, 10 do print(n, B.delay(n, nil, nil, function() return 0 end),"
                  " B.delay(n, nil, nil, function() return 1 end), B.delay(n)) end")
    for line in out.splitlines():
        n, low, high, drawn = (float(x) for x in line.split("\t"))
        ceiling = min(60.0, 2 ** (n - 1))
        assert (low, high) == (ceiling / 2, ceiling)
        assert low <= drawn <= high


def test_export_settings_map_the_protocol_to_lightroom_keys() -> None:
    """The export object becomes Lightroom's LR_ keys: a JPEG into export_dir, quality 0..1,
    long edge in pixels, colour space, sharpening and metadata choices."""
    code = ("_PLUGIN = {path = '.', id = 'test'}\n"
            "import = function(name) return require(name) end\n"
            f"package.path = '{Path(__file__).parent}/sdk/?.lua;' .. package.path\n"
            "local J = require 'Json'\n"
            "local R = require 'JobRunner'\n"
            "print(J.encode(R.exportSettings(J.decode(io.read('*a')), '/tmp/out')))")
    settings = json.loads(run_lua(code, json.dumps({**JPEG_EXPORT, "sharpening": "glossy",
                                                    "metadata": "copyright"})))
    assert settings["LR_export_destinationType"] == "specificFolder"
    assert settings["LR_export_destinationPathPrefix"] == "/tmp/out"
    assert settings["LR_format"] == "JPEG"
    assert settings["LR_jpeg_quality"] == 0.8
    assert (settings["LR_size_doConstrain"], settings["LR_size_resizeType"],
            settings["LR_size_maxWidth"], settings["LR_size_units"]) == (True, "longEdge", 40,
                                                                        "pixels")
    assert settings["LR_outputSharpeningMedia"] == "glossy"
    assert settings["LR_embeddedMetadataOption"] == "copyrightOnly"


# Against the real bridge ---------------------------------------------------------------------

@pytest.fixture
def loop() -> Iterator[BridgeLoop]:
    bridge_loop = BridgeLoop()
    yield bridge_loop
    bridge_loop.close()


@pytest.fixture
def plugins() -> Iterator[list[LuaPlugin]]:
    """Register plugin processes here; each is killed at the end, whatever happens."""
    started: list[LuaPlugin] = []
    yield started
    for plugin in started:
        plugin.kill()


@pytest.fixture
def bridges() -> Iterator[list[BridgeHandle]]:
    started: list[BridgeHandle] = []
    yield started
    for bridge in started:
        bridge.stop()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A real 96x64 JPEG with a gradient, dark enough that a +1 EV render is visibly brighter."""
    path = tmp_path / "input" / "IMG_0001.jpg"
    path.parent.mkdir()
    image = Image.new("RGB", (96, 64))
    image.putdata([(x, y, (x + y) // 2) for y in range(64) for x in range(96)])
    image.save(path, "JPEG", quality=90)
    return path


def start(tmp_path: Path, loop: BridgeLoop, bridges: list[BridgeHandle],
          plugins: list[LuaPlugin], *, client_timeout_s: float = 300.0,
          render_delay_s: float = 0.0) -> tuple[BridgeHandle, LuaPlugin]:
    bridge = BridgeHandle(loop, tmp_path / "jobs", client_timeout_s=client_timeout_s)
    bridges.append(bridge)
    plugin = LuaPlugin(tmp_path / "lr1", bridge.port, render_delay_s=render_delay_s)
    plugins.append(plugin)
    wait_until(lambda: bridge.version() == "13.2", 20, message="the plugin to register")
    return bridge, plugin


def mean_brightness(path: Path) -> float:
    with Image.open(path) as image:
        return float(sum(ImageStat.Stat(image.convert("L")).mean))


def test_plugin_develops_and_exports_a_job_end_to_end(
        tmp_path: Path, loop: BridgeLoop, bridges: list[BridgeHandle],
        plugins: list[LuaPlugin], photo: Path) -> None:
    """The plugin handshakes, registers as Lightroom 13.2 with its catalog, takes a job, adds
    the photo, applies the preset (by name) and settings, exports and reports progress per
    rendition; run_job returns a real, new JPEG in the job's export folder."""
    bridge, plugin = start(tmp_path, loop, bridges, plugins)
    outputs = bridge.run_job("job-1", 1, photo,
                             {"preset": "Photonic Bright", "settings": {"Contrast2012": 10}},
                             JPEG_EXPORT).result(30)
    assert len(outputs) == 1
    out = outputs[0]
    assert out.parent.parent == (tmp_path / "jobs").resolve()
    assert out.name == "IMG_0001.jpg"
    with Image.open(out) as image:
        assert image.format == "JPEG"
        assert max(image.size) == 40
    assert out.read_bytes() != photo.read_bytes()
    assert mean_brightness(out) > mean_brightness(photo) * 1.5
    assert [m for _, m in bridge.progress][-1] == "rendered 1 of 1"
    assert bridge.progress[-1][0] == 1.0
    assert "bridge_connected" in plugin.log() and "catalog=\"Test Catalog\"" in plugin.log()
    assert "TASK ERROR" not in plugin.log()


def test_a_preset_lightroom_does_not_have_fails_the_job_with_its_message(
        tmp_path: Path, loop: BridgeLoop, bridges: list[BridgeHandle],
        plugins: list[LuaPlugin], photo: Path) -> None:
    """A develop preset found neither by UUID nor by name: job_failed with that sentence,
    which run_job raises as ExecutorError; the plugin goes on taking jobs (found by UUID)."""
    bridge, _ = start(tmp_path, loop, bridges, plugins)
    with pytest.raises(ExecutorError, match="No Such Preset"):
        bridge.run_job("job-2", 1, photo, {"preset": "No Such Preset"}, JPEG_EXPORT).result(30)
    uuid = "4C4B1A2E-0000-4000-8000-000000000002"
    outputs = bridge.run_job("job-3", 1, photo, {"preset": uuid}, JPEG_EXPORT).result(30)
    assert mean_brightness(outputs[0]) < mean_brightness(photo)


def test_a_cancelled_job_stops_and_reports_nothing(
        tmp_path: Path, loop: BridgeLoop, bridges: list[BridgeHandle],
        plugins: list[LuaPlugin], photo: Path) -> None:
    """Cancelling the task awaiting run_job sends job_cancelled; the plugin stops at its next
    step and sends no job_completed; it then takes the next job."""
    bridge, plugin = start(tmp_path, loop, bridges, plugins, render_delay_s=1.0)
    pending = bridge.run_job("job-4", 1, photo, {}, JPEG_EXPORT)
    wait_until(lambda: any(m == "exporting" for _, m in bridge.progress), 20,
               message="the export to start")
    pending.cancel()
    with pytest.raises(CancelledError):
        pending.result(5)
    wait_until(lambda: "job_cancelled attempt=1 job_id=job-4" in plugin.log(), 20,
               message="the plugin to stop the job")
    assert "job_completed" not in plugin.log()
    assert "job_report_failed" not in plugin.log()
    outputs = bridge.run_job("job-5", 1, photo, {}, JPEG_EXPORT).result(30)
    assert len(outputs) == 1


def test_lightroom_killed_mid_job_hands_it_back_and_a_new_one_completes_it_once(
        tmp_path: Path, loop: BridgeLoop, bridges: list[BridgeHandle],
        plugins: list[LuaPlugin], photo: Path) -> None:
    """Lightroom 'quits' mid-render (SIGKILL): once the bridge finds the client silent, run_job
    raises HandBack (not a failure); a fresh plugin process connects and completes the job's
    next attempt, rendering it once, with one output."""
    bridge, first = start(tmp_path, loop, bridges, plugins, client_timeout_s=1.0,
                          render_delay_s=60.0)
    pending = bridge.run_job("job-6", 1, photo, {"preset": "Photonic Bright"}, JPEG_EXPORT)
    wait_until(lambda: any(m == "exporting" for _, m in bridge.progress), 20,
               message="the export to start")
    first.kill()
    with pytest.raises(HandBack):
        pending.result(20)
    assert bridge.version() is None
    second = LuaPlugin(tmp_path / "lr2", bridge.port)
    plugins.append(second)
    wait_until(lambda: bridge.version() == "13.2", 20, message="the new plugin to register")
    outputs = bridge.run_job("job-6", 2, photo, {"preset": "Photonic Bright"},
                             JPEG_EXPORT).result(30)
    assert len(outputs) == 1 and outputs[0].is_file()
    assert [p.name for p in outputs[0].parent.iterdir()] == ["IMG_0001.jpg"]
    wait_until(lambda: "job_completed" in second.log(), 10, message="the plugin's log line")
    assert second.log().count("job_started") == 1
    assert second.log().count("job_completed") == 1


def test_a_plugin_started_before_the_bridge_backs_off_then_connects(
        tmp_path: Path, loop: BridgeLoop, bridges: list[BridgeHandle],
        plugins: list[LuaPlugin], photo: Path) -> None:
    """With no bridge listening the plugin retries with growing delays; when the bridge
    starts on its port the plugin connects, registers and runs a job."""
    port = free_port()
    plugin = LuaPlugin(tmp_path / "lr1", port)
    plugins.append(plugin)
    wait_until(lambda: "bridge_retry" in plugin.log() and "failures=3" in plugin.log(), 20,
               message="three failed attempts")
    bridge = BridgeHandle(loop, tmp_path / "jobs", port=port)
    bridges.append(bridge)
    wait_until(lambda: bridge.version() == "13.2", 20, message="the plugin to connect")
    assert len(bridge.run_job("job-7", 1, photo, {}, JPEG_EXPORT).result(30)) == 1


def test_plugin_exits_after_n_jobs_when_told(
        tmp_path: Path, loop: BridgeLoop, bridges: list[BridgeHandle], photo: Path) -> None:
    """run_plugin.lua with PHOTONIC_STUB_EXIT_AFTER_JOBS=1 ends by itself after one job."""
    bridge = BridgeHandle(loop, tmp_path / "jobs")
    bridges.append(bridge)
    plugin = LuaPlugin(tmp_path / "lr1", bridge.port, exit_after_jobs=1)
    try:
        wait_until(lambda: bridge.version() == "13.2", 20, message="the plugin to register")
        bridge.run_job("job-8", 1, photo, {}, JPEG_EXPORT).result(30)
        assert plugin.process.wait(20) == 0
        assert "finished 1 jobs" in plugin.output()
    finally:
        plugin.kill()


# Install ---------------------------------------------------------------------------------------

AGENT_YAML = """\
agent:
  id: studio
  server_endpoints: [127.0.0.1:50051]
  buffer_path: buffer
  watch:
    - path: photos
security:
  cert_path: certs/studio.crt
  key_path: certs/studio.key
  ca_path: certs/ca.crt
work:
  lightroom:
    port: 7788
"""


def test_install_plugin_copies_every_file_and_writes_private_settings(tmp_path: Path) -> None:
    """`photonic lightroom install-plugin --config agent.yaml --dest DIR` copies every plugin
    file and writes photonic-bridge.json (0600) with the bridge URL from work.lightroom.port
    and the secret it made in the buffer; a second install replaces the first whole."""
    config = tmp_path / "agent.yaml"
    config.write_text(AGENT_YAML)
    dest = tmp_path / "Modules"
    for _ in range(2):
        assert main(["lightroom", "install-plugin", "--config", str(config),
                     "--dest", str(dest)]) == 0
    installed = dest / PLUGIN_DIR_NAME
    shipped = sorted(p.name for p in PLUGIN.iterdir() if p.suffix == ".lua")
    assert {"Info.lua", "PluginInit.lua", "BridgeClient.lua", "JobRunner.lua",
            "StatusMenu.lua", "Json.lua"} <= set(shipped)
    assert sorted(p.name for p in installed.iterdir()) == sorted([*shipped, PREFS_FILE_NAME])
    for name in shipped:
        assert (installed / name).read_bytes() == (PLUGIN / name).read_bytes()
    assert [p.name for p in dest.iterdir()] == [PLUGIN_DIR_NAME]
    prefs = installed / PREFS_FILE_NAME
    assert stat.S_IMODE(prefs.stat().st_mode) == 0o600
    secret = (tmp_path / "buffer" / "lightroom.secret").read_text().strip()
    assert json.loads(prefs.read_text()) == {"bridge_url": "http://127.0.0.1:7788",
                                             "secret": secret}
