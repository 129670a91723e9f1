"""The tests' backend switch (tests/support/backend.py): PHOTONIC_TEST_BACKEND=scaleout writes
every test server's server.yaml with a fresh PostgreSQL catalog and a fresh bucket on the
process's moto server, keeps both when the same server's config is rewritten, leaves what a
test configures itself alone, and a misspelt backend fails instead of running the default."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from photonic.config import ObjectBackend, load_server_config
from tests.support.backend import TEST_BACKEND_ENV, process_s3
from tests.support.daemons import write_server_config
from tests.support.pki import TestPki


def _written(root: Path, pki: TestPki, extra: dict[str, object] | None = None) -> dict[str, object]:
    path, _port = write_server_config(root, pki, extra=extra)
    loaded: dict[str, object] = yaml.safe_load(path.read_text("utf-8"))
    return loaded


def test_scaleout_gives_each_server_a_fresh_database_and_bucket_and_keeps_them(
        tmp_path: Path, pki: TestPki, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two servers get two PostgreSQL databases and two buckets that exist on the moto server;
    the job queue follows the PostgreSQL catalog; the server accepts the config; rewriting a
    server's config (a test changing a key) keeps its database and bucket."""
    pytest.importorskip("psycopg", reason="psycopg missing: pip install -e '.[dev]'")
    monkeypatch.setenv(TEST_BACKEND_ENV, "scaleout")
    first = _written(tmp_path / "a", pki)
    second = _written(tmp_path / "b", pki)
    urls = [c["catalog"]["url"] for c in (first, second)]  # type: ignore[index]
    objects = [c["storage"]["objects"] for c in (first, second)]  # type: ignore[index]
    assert all(u.startswith("postgresql://") for u in urls) and urls[0] != urls[1]
    assert all(o.startswith("s3://") for o in objects) and objects[0] != objects[1]
    assert "queue_url" not in first.get("jobs", {})  # type: ignore[operator]
    bucket = objects[0][len("s3://"):].split("/")[0]
    assert process_s3().keys(bucket) == []  # it exists (an unknown bucket raises)
    config = load_server_config(tmp_path / "a" / "server.yaml")
    assert config.objects.backend is ObjectBackend.S3
    assert config.catalog.url == urls[0]
    again = _written(tmp_path / "a", pki, {"storage": {"min_free_space": "2MB"}})
    assert (again["catalog"], again["storage"]["objects"]) == (  # type: ignore[index]
        first["catalog"], objects[0])


def test_what_a_test_configures_itself_is_kept(
        tmp_path: Path, pki: TestPki, monkeypatch: pytest.MonkeyPatch) -> None:
    """storage.objects named by the test stays; a key the server refuses with S3 objects
    (the scrub here) keeps the objects local; embedded writes neither key."""
    pytest.importorskip("psycopg", reason="psycopg missing: pip install -e '.[dev]'")
    monkeypatch.setenv(TEST_BACKEND_ENV, "scaleout")
    named = _written(tmp_path / "named", pki, {"storage": {"objects": "local"}})
    assert named["storage"]["objects"] == "local"  # type: ignore[index]
    scrubbed = _written(tmp_path / "scrub", pki, {"storage": {"scrub_interval": "1h"}})
    assert "objects" not in scrubbed["storage"]  # type: ignore[operator]
    monkeypatch.setenv(TEST_BACKEND_ENV, "embedded")
    plain = _written(tmp_path / "plain", pki)
    assert "catalog" not in plain and "objects" not in plain["storage"]  # type: ignore[operator]


def test_a_misspelt_backend_fails_instead_of_running_the_default(
        tmp_path: Path, pki: TestPki, monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in PHOTONIC_TEST_BACKEND raises, naming the backends it takes."""
    monkeypatch.setenv(TEST_BACKEND_ENV, "scaleot")
    with pytest.raises(RuntimeError, match="expected one of embedded, postgresql, scaleout"):
        write_server_config(tmp_path, pki)
