"""Capability tags and how a job's requirements match a worker's tags."""

from __future__ import annotations

from photonic.jobs_model import parse_tags, satisfies


def test_tags_parse_names_and_values_case_insensitively() -> None:
    assert parse_tags(["bgremove", "GPU", "os=macos", "lightroom=13.2"]) == {
        "bgremove": "", "gpu": "", "os": "macos", "lightroom": "13.2"}


def test_a_worker_needs_the_kind_and_every_required_tag() -> None:
    """The kind is itself a tag; a bare requirement needs the tag, `name=value` that exact
    value, and `name>=version` at least that version."""
    caps = parse_tags(["facecrop", "gpu", "os=linux", "lightroom=13.2"])
    assert satisfies(caps, "facecrop", [])
    assert not satisfies(caps, "bgremove", [])
    assert satisfies(caps, "facecrop", ["gpu", "os=linux"])
    assert not satisfies(caps, "facecrop", ["os=macos"])
    assert not satisfies(caps, "facecrop", ["tpu"])
    assert satisfies(caps, "facecrop", ["lightroom>=13"])
    assert satisfies(caps, "facecrop", ["lightroom>=13.2"])
    assert not satisfies(caps, "facecrop", ["lightroom>=13.10"])
    assert not satisfies(caps, "facecrop", ["lightroom>=14"])
