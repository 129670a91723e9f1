"""The S3 store says when it resumes an upload from the ledger, and whether it must read the
object back: the only outside sign (for an operator, and the two-server chaos test) that a
server continued another process's multipart upload rather than starting over."""

from __future__ import annotations

import hashlib
import logging
import os

import pytest

from photonic.models import ContentHash
from tests.unit.server.storage.conftest import S3World

CHUNK = 4 * 1024 * 1024


def _resumed(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.__dict__ for r in caplog.records if r.getMessage() == "s3_upload_resumed"]


def _parked(s3_world: S3World) -> tuple[bytes, ContentHash, str]:
    """Content of three chunks whose upload was parked after its first part (two chunks)."""
    data = os.urandom(3 * CHUNK)
    sha = ContentHash(hashlib.sha256(data).hexdigest())
    up = s3_world.store.partial(sha, len(data), resume=False)
    up.append(data[:CHUNK])
    up.append(data[CHUNK:2 * CHUNK])
    assert up.park()
    return data, sha, up.upload_id


def test_a_resume_in_another_process_is_logged_with_its_upload_and_a_read_back(
        s3_world: S3World, caplog: pytest.LogCaptureFixture) -> None:
    """A store that never saw the first part (another server, or this one restarted) logs
    the ledger's upload id, the offset it continues from, and read_back=True."""
    data, sha, upload_id = _parked(s3_world)
    caplog.set_level(logging.INFO, "photonic.server.storage.s3")
    up = s3_world.reopen().partial(sha, len(data))
    assert up.upload_id == upload_id
    [fields] = _resumed(caplog)
    assert (fields["sha256"], fields["upload"], fields["offset"], fields["parts"],
            fields["read_back"]) == (sha[:16], upload_id, 2 * CHUNK, 1, True)


def test_a_resume_in_the_same_process_needs_no_read_back(
        s3_world: S3World, caplog: pytest.LogCaptureFixture) -> None:
    """The store that hashed the first part keeps that hash: read_back=False."""
    data, sha, _upload_id = _parked(s3_world)
    caplog.set_level(logging.INFO, "photonic.server.storage.s3")
    s3_world.store.partial(sha, len(data))
    [fields] = _resumed(caplog)
    assert fields["read_back"] is False


def test_a_fresh_upload_logs_no_resume(s3_world: S3World,
                                       caplog: pytest.LogCaptureFixture) -> None:
    """Nothing in the ledger: the upload starts at byte 0 and says nothing of a resume."""
    data = os.urandom(2 * CHUNK)
    caplog.set_level(logging.INFO, "photonic.server.storage.s3")
    s3_world.store.partial(ContentHash(hashlib.sha256(data).hexdigest()), len(data))
    assert _resumed(caplog) == []
