"""The simplest whole path: photos in a folder reach the server's library byte-identical."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemons import ServerHandle, make_agent, tree_hashes
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki

pytestmark = pytest.mark.e2e


def test_once_syncs_a_folder_byte_identical(tmp_path: Path, pki: TestPki,
                                             server: ServerHandle) -> None:
    """`photonic agent --once` uploads every photo and the library holds identical bytes."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    photos = agent.watches["photos"]
    for i in range(3):
        make_jpeg(photos / f"IMG_{i:04d}.jpg", seed=i)
    summary = agent.once()
    assert summary["files_uploaded"] == 3
    assert tree_hashes(server.library("laptop", "photos")) == tree_hashes(photos)
