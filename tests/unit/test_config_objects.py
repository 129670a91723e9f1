"""storage.objects and storage.s3: where photos' bytes live, every wrong value named by file
and key, and the subsystems that need local objects refused at load time in S3 mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from photonic.config import ObjectBackend, S3Settings, load_server_config
from tests.unit.test_config import MINIMAL_SERVER, by_key, server_problems, write


def with_storage(extra: str, server: str = "") -> str:
    text = MINIMAL_SERVER + "storage:\n" + extra
    return text.replace("  storage_path: store\n", "  storage_path: store\n" + server, 1)


def test_local_is_the_default(tmp_path: Path) -> None:
    config = load_server_config(write(tmp_path, MINIMAL_SERVER))
    assert config.objects.backend is ObjectBackend.LOCAL and config.objects.s3 is None
    assert config.scrub.interval_s > 0


@pytest.mark.parametrize(("url", "bucket", "prefix"), [
    ("s3://photos", "photos", ""),
    ("s3://photos/", "photos", ""),
    ("s3://my.studio-photos/archive/2024", "my.studio-photos", "archive/2024/"),
    ("s3://photos//a//b/", "photos", "a/b/"),
])
def test_an_s3_url_names_bucket_and_prefix(tmp_path: Path, url: str, bucket: str,
                                          prefix: str) -> None:
    config = load_server_config(write(tmp_path, with_storage(
        f"  objects: {url}\n  s3:\n    endpoint_url: http://127.0.0.1:9000\n"
        "    region: eu-west-1\n")))
    assert config.objects.backend is ObjectBackend.S3
    assert config.objects.s3 == S3Settings(bucket, prefix, "http://127.0.0.1:9000", "eu-west-1")
    assert config.scrub.interval_s == 0, "the scrub cannot read S3 yet: off unless asked"


@pytest.mark.parametrize("value", ["s3", "s3://", "s3://UPPER", "s3://a", "gs://photos",
                                   "/srv/objects", "s3://photos/../x", "s3://photos/a b", "42"])
def test_bad_objects_values_name_file_key_and_expectation(tmp_path: Path, value: str) -> None:
    problem = by_key(server_problems(tmp_path, with_storage(f"  objects: '{value}'\n")))[
        "storage.objects"]
    assert problem.file.endswith("config.yaml")
    assert "'local' or s3://bucket/prefix" in problem.expected


def test_bad_s3_keys_are_each_reported(tmp_path: Path) -> None:
    problems = by_key(server_problems(tmp_path, with_storage(
        "  objects: s3://photos\n  s3:\n    endpoint_url: ftp://x\n    region: Europe West\n"
        "    secret_key: nope\n")))
    assert "http:// or https://" in problems["storage.s3.endpoint_url"].expected
    assert "region" in problems["storage.s3.region"].expected
    assert "known key" in problems["storage.s3.secret_key"].expected


def test_an_s3_section_without_an_s3_store_is_refused(tmp_path: Path) -> None:
    problems = by_key(server_problems(tmp_path, with_storage(
        "  s3:\n    region: us-east-1\n")))
    assert "storage.objects" in problems["storage.s3"].expected


def test_subsystems_that_need_local_objects_are_refused_in_s3_mode(tmp_path: Path) -> None:
    problems = by_key(server_problems(tmp_path, with_storage(
        "  objects: s3://photos\n  scrub_interval: 7d\n"
        "  repair_from:\n    - name: other\n      endpoint: 10.0.0.2:50051\n",
        server="  nfs_export: true\n")))
    for key in ("storage.scrub_interval", "storage.repair_from", "server.nfs_export"):
        assert "storage.objects: local" in problems[key].expected, key


@pytest.mark.parametrize("command", [["verify"], ["scrub", "--now"],
                                     ["server", "promote", "--from-primary", "p"]])
def test_commands_that_read_local_objects_refuse_an_s3_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    from photonic.cli import main

    path = write(tmp_path, with_storage("  objects: s3://photos/studio\n"))
    assert main([*command, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: storage.objects: expected local for `photonic" in err
    assert "Traceback" not in err
