"""Installs the Photonic.lrplugin folder where Lightroom Classic finds plug-ins and leaves it
the bridge's address and secret (photonic-bridge.json, 0600, which the plugin copies into its
preferences at start: Lightroom's own preference store is out of reach from here)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from photonic._configjobs import LIGHTROOM_PORT
from photonic.config import AgentConfig
from photonic.errors import InvalidInput
from photonic.lightroom.secret import load_or_make_secret

PLUGIN_DIR_NAME = "Photonic.lrplugin"
PREFS_FILE_NAME = "photonic-bridge.json"
"""Read by the plugin's Settings.lua; the name is part of the plugin's contract."""


@dataclass(frozen=True)
class InstalledPlugin:
    """Where the plugin went and what it was told."""

    plugin_dir: Path
    prefs_path: Path
    bridge_url: str
    files: tuple[str, ...]


def plugin_source() -> Path:
    """The plugin as shipped in the package."""
    return Path(__file__).resolve().parent / "plugin" / PLUGIN_DIR_NAME


def default_modules_dir(platform: str = sys.platform,
                        environ: Mapping[str, str] = os.environ,
                        home: Path | None = None) -> Path | None:
    """Lightroom Classic's Modules folder on macOS and Windows; None elsewhere."""
    home = home if home is not None else Path.home()
    if platform == "darwin":
        return home / "Library" / "Application Support" / "Adobe" / "Lightroom" / "Modules"
    if platform == "win32":
        appdata = environ.get("APPDATA")
        base = Path(appdata) if appdata else home / "AppData" / "Roaming"
        return base / "Adobe" / "Lightroom" / "Modules"
    return None


def bridge_url(config: AgentConfig) -> str:
    """http://127.0.0.1:<work.lightroom.port> (the bridge listens on loopback only)."""
    port = config.work.options.get("lightroom", {}).get("port", LIGHTROOM_PORT)
    return f"http://127.0.0.1:{port}"


def install_for_agent(config: AgentConfig, dest: Path | None) -> InstalledPlugin:
    """Installs into dest (else the OS's Modules folder) with this agent's port and secret,
    making the secret when the agent has not yet."""
    modules = dest if dest is not None else default_modules_dir()
    if modules is None:
        raise InvalidInput(f"Lightroom Classic runs on macOS and Windows only, so there is no "
                           f"default plug-in folder on {sys.platform}: name one with --dest")
    return install_plugin(modules, bridge_url(config), load_or_make_secret(config.buffer_path))


def install_plugin(modules_dir: Path, url: str, secret: str,
                   extra_settings: Mapping[str, object] | None = None) -> InstalledPlugin:
    """Copies the plugin to modules_dir/Photonic.lrplugin, replacing an earlier copy whole,
    and writes its settings file. The new copy is complete before it takes the old one's
    place, so Lightroom never sees half a plugin."""
    modules_dir.mkdir(parents=True, exist_ok=True)
    target = modules_dir / PLUGIN_DIR_NAME
    staging = modules_dir / f".{PLUGIN_DIR_NAME}.{secrets.token_hex(4)}.tmp"
    files = _copy_plugin(plugin_source(), staging)
    settings: dict[str, object] = {"bridge_url": url, "secret": secret}
    settings.update(extra_settings or {})
    _write_private(staging / PREFS_FILE_NAME, json.dumps(settings, indent=2) + "\n")
    old = modules_dir / f".{PLUGIN_DIR_NAME}.{secrets.token_hex(4)}.old"
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return InstalledPlugin(target, target / PREFS_FILE_NAME, url, files)


def _copy_plugin(source: Path, staging: Path) -> tuple[str, ...]:
    staging.mkdir(mode=0o755)
    names = sorted(p.name for p in source.iterdir() if p.is_file() and p.suffix == ".lua")
    for name in names:
        shutil.copyfile(source / name, staging / name)
    return tuple(names)


def _write_private(path: Path, text: str) -> None:
    """A file only its owner reads (it holds the bridge's secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
