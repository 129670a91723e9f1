"""The `storage.objects` key of server.yaml (where photos' bytes live: `local`, the default,
or `s3://bucket/prefix`) and `storage.s3` (endpoint_url, region), and the refusal of keys
whose subsystems need a local object store. photonic.config re-exports the dataclasses.

Credentials are never config keys: the AWS SDK finds them where it always does (environment,
shared credentials file, instance role)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from photonic import _configparse as cp
from photonic.errors import ConfigError, ConfigProblem

OBJECTS_EXPECTED = "'local' or s3://bucket/prefix (a bucket name of 3-63 lowercase letters, " \
                   "digits, '.' or '-', then an optional key prefix)"
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_PART_RE = re.compile(r"^[A-Za-z0-9!_.*'()-]+$")
_ENDPOINT_RE = re.compile(r"^https?://[A-Za-z0-9.\[\]:-]+(:\d{1,5})?(/[^\s]*)?$")
_REGION_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class ObjectBackend(StrEnum):
    LOCAL = "local"
    S3 = "s3"


@dataclass(frozen=True)
class S3Settings:
    """Where an S3-compatible store keeps the objects."""

    bucket: str
    prefix: str
    """'' or ending in '/': every key photonic writes starts with it."""
    endpoint_url: str | None = None
    """`storage.s3.endpoint_url`: None is AWS itself (the SDK picks the endpoint)."""
    region: str | None = None
    """`storage.s3.region`: None leaves it to the SDK's chain (AWS_REGION, the config file)."""


@dataclass(frozen=True)
class ObjectsConfig:
    backend: ObjectBackend = ObjectBackend.LOCAL
    s3: S3Settings | None = None
    """Set when backend is S3."""


def parse_objects_url(value: object) -> tuple[str, str] | None:
    """(bucket, prefix) of s3://bucket/prefix; None for 'local'; cp.Invalid otherwise."""
    if not isinstance(value, str):
        raise cp.Invalid
    if value == "local":
        return None
    if not value.startswith("s3://"):
        raise cp.Invalid
    bucket, _slash, prefix = value[len("s3://"):].partition("/")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise cp.Invalid
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") or not _PREFIX_PART_RE.match(p) for p in parts):
        raise cp.Invalid(f"{OBJECTS_EXPECTED}; the prefix's folders may hold letters, digits "
                         "and !_.*'()- only")
    return bucket, "".join(f"{p}/" for p in parts)


_OBJECTS = cp.Field(OBJECTS_EXPECTED, parse_objects_url)
_ENDPOINT = cp.text("an http:// or https:// URL of the S3 endpoint",
                    lambda v: bool(_ENDPOINT_RE.match(v)))
_REGION = cp.text("a region name such as us-east-1", lambda v: bool(_REGION_RE.match(v)))


def read_objects(storage: cp.Section) -> ObjectsConfig:
    """Reads storage.objects and storage.s3; every problem is recorded."""
    where = storage.get("objects", _OBJECTS, None)
    s3 = storage.section("s3")
    endpoint = s3.get("endpoint_url", _ENDPOINT, "") or None
    region = s3.get("region", _REGION, "") or None
    cp.finish([s3])
    if where is None:
        if storage.has("s3"):
            storage.problems.add(storage.key("s3"), f"no {storage.key('s3')} section unless "
                                 f"{storage.key('objects')} is an s3:// URL")
        return ObjectsConfig()
    bucket, prefix = where
    return ObjectsConfig(ObjectBackend.S3, S3Settings(bucket, prefix, endpoint, region))


LOCAL_ONLY = "storage.objects: local (this feature reads objects as local files; it does not " \
             "work with an s3:// object store yet)"


def refuse_local_only(problems: cp.Problems, objects: ObjectsConfig,
                      keys: list[tuple[str, bool]]) -> None:
    """In S3 mode, each (key, set) whose subsystem needs local objects is a problem naming the
    key and storage.objects, so the server refuses to start instead of failing later."""
    if objects.backend is not ObjectBackend.S3:
        return
    for key, is_set in keys:
        if is_set:
            problems.add(key, f"not set while {LOCAL_ONLY}")


def require_local_objects(config_path: Path, objects: ObjectsConfig, command: str) -> None:
    """Refuses a command that reads objects as local files when they are in S3: a ConfigError
    naming the file and storage.objects (its run would find every object missing)."""
    if objects.backend is ObjectBackend.S3 and objects.s3 is not None:
        raise ConfigError([ConfigProblem(
            str(config_path), "storage.objects",
            f"local for `photonic {command}`, which reads objects as local files and does not "
            "work with an s3:// object store yet",
            f"s3://{objects.s3.bucket}/{objects.s3.prefix}")])
