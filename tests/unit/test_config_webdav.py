"""server.webdav: on unless set to false; anything but a YAML boolean is a problem naming the
file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from photonic.config import load_server_config
from photonic.errors import ConfigError

SERVER = """\
server:
  storage_path: store
{extra}security:
  cert_path: certs/server.crt
  key_path: certs/server.key
  ca_path: certs/ca.crt
"""


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "server.yaml"
    path.write_text(SERVER.format(extra=extra), encoding="utf-8")
    return path


def test_webdav_is_on_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    assert load_server_config(write(tmp_path, "")).webdav is True
    assert load_server_config(write(tmp_path, "  webdav: false\n")).webdav is False


@pytest.mark.parametrize("value", ["'yes'", "1", "[true]"])
def test_a_webdav_that_is_not_a_boolean_names_file_key_and_expected(
        tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_server_config(write(tmp_path, f"  webdav: {value}\n"))
    [problem] = caught.value.problems
    assert (Path(problem.file).name, problem.key) == ("server.yaml", "server.webdav")
    assert "true or false" in problem.expected
    assert "server.yaml" in str(caught.value) and "server.webdav" in str(caught.value)
