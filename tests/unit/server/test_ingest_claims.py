"""A content's upload claim outlives the stream that held it until every worker thread on that
content has returned: the audit's cancel race (a stream ending while its commit waits in a slow
sync, another stream waiting for the same content) can no longer store an empty object."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from photonic.models import Decision
from tests.support.races import cancel_mid_commit, committed_library_files, odd_sized, race_deps


def test_a_stream_ended_mid_commit_keeps_its_claim_until_the_commit_thread_returns(
        tmp_path: Path) -> None:
    """The laptop's stream ends while its commit is held in the content sync: the desktop,
    waiting for the same 9 MB photo, is answered nothing until that thread returns, then
    (after a proof of possession) HAVE for an object that hashes to its name. Nothing empty
    is acknowledged, no partial is left, and the claim is free again."""
    deps, sync, filesystem = race_deps(tmp_path)
    content = odd_sized(9 << 20)
    try:
        outcome = asyncio.run(cancel_mid_commit(
            deps, sync, content, close_after_s=None, second_after_s=0.0, hold_s=None,
            check_second_waits=True))
    finally:
        deps.catalog.close()
        filesystem.close()
    assert outcome.object_intact
    # The desktop never held this photo: it proves it holds the bytes, then gets HAVE.
    assert [d.action for d in outcome.second.decisions()] == [Decision.PROVE, Decision.HAVE]
    assert outcome.acknowledged() and not outcome.second.broken
    library = tmp_path / "library" / "desktop" / "photos" / "z.jpg"
    assert hashlib.sha256(library.read_bytes()).hexdigest() == outcome.second.decisions()[0].sha256
    assert committed_library_files(deps, outcome) == []
    assert not deps.claims.held(outcome.second.decisions()[0].sha256)
    assert sorted(p.name for p in deps.store.partial.iterdir()) == []
