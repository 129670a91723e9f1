"""A path the server's storage cannot hold is refused for good, with its reason, instead of
being retried forever: a photo under a name that is a file in the server's library (deletions
never propagate, so the old file stays there), and the same when its content is already
stored (the answer used to be an internal error carrying the server's storage path)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.daemons import ServerHandle, make_agent, sha256_of
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import library_sha

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("already_stored", [False, True])
def test_a_photo_under_a_path_that_is_a_file_on_the_server_is_refused_once(
        tmp_path: Path, pki: TestPki, server: ServerHandle, already_stored: bool) -> None:
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    photos = agent.watches["photos"]
    make_jpeg(photos / "dir" / "a.jpg", seed=1)
    if already_stored:
        make_jpeg(photos / "elsewhere.jpg", seed=2)
    agent.once()
    (photos / "dir" / "a.jpg").unlink()  # on the laptop a.jpg becomes a folder
    make_jpeg(photos / "dir" / "a.jpg" / "b.jpg", seed=2)

    first = agent.once()
    assert first["files_rejected"] == 1, first
    (failed,) = agent.status()["failed_files"]
    assert (failed["watch"], failed["path"]) == ("photos", "dir/a.jpg/b.jpg")
    assert failed["reason"].startswith("the server cannot store a photo at this path: a file "
                                       "of the same name stands where one of its folders")
    assert str(server.storage) not in failed["reason"] and "Error" not in failed["reason"]
    again = agent.once()  # nothing changed: not offered again
    assert again["files_rejected"] == 0 and again["bytes_sent"] == 0, again
    assert library_sha(server, "laptop", "photos", "dir/a.jpg") != sha256_of(
        photos / "dir" / "a.jpg" / "b.jpg")

    shutil.move(photos / "dir" / "a.jpg" / "b.jpg", photos / "dir" / "b.jpg")  # renamed
    fixed = agent.once()
    assert fixed["files_rejected"] == 0
    assert library_sha(server, "laptop", "photos", "dir/b.jpg") == sha256_of(
        photos / "dir" / "b.jpg")
