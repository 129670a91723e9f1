"""A content's upload claim outlives the stream that held it until every worker thread on that
content has returned: the audit's cancel race (a stream ending while its commit waits in a slow
sync, another stream waiting for the same content) can no longer store an empty object."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path

import pytest

from photonic.models import ConflictPolicy, Decision, ManifestEntry
from photonic.server.ingest_deps import Placed
from tests.support.ingest import IngestStream, chunk_of, open_stream, real_ingest_deps, sha_of
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


PHOTO = b"a photo whose upload is interrupted " * 100


def test_a_stream_ended_while_it_reads_a_partials_offset_releases_the_claim(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim is taken after the look-up (another stream held it then and let go of it
    meanwhile), so the partial's offset is read after the claim; the stream ends right
    there, as when the agent behind it is killed."""
    sha = sha_of(PHOTO)
    deps = real_ingest_deps(tmp_path)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        await deps.claims.try_claim(sha)  # another stream is writing the content
        stream = IngestStream(deps)
        looked_up = stream.session._look_up

        def look_up_then_other_stream_lets_go(offered: Placed, held: set[str]
                                              ) -> object:
            found = looked_up(offered, held)
            loop.call_soon_threadsafe(deps.claims.release, sha)
            return found

        reading = threading.Event()
        finish_reading = threading.Event()
        partial_offset = deps.store.partial_offset

        def slow_partial_offset(content: str) -> int:
            reading.set()
            finish_reading.wait(10)
            return partial_offset(content)

        monkeypatch.setattr(stream.session, "_look_up", look_up_then_other_stream_lets_go)
        monkeypatch.setattr(deps.store, "partial_offset", slow_partial_offset)
        entry = ManifestEntry(sha, len(PHOTO), "photos", "a.jpg")
        manifest = asyncio.create_task(
            stream.session.on_manifest([entry], ConflictPolicy.AUTO))
        await asyncio.to_thread(reading.wait, 10)
        assert reading.is_set(), "the stream never read the partial's offset"
        assert deps.claims.held(sha), "the stream took the claim"
        manifest.cancel()  # the handler is cancelled: its agent is gone
        finish_reading.set()
        await asyncio.gather(manifest, return_exceptions=True)
        await stream.session.close()
        assert not deps.claims.held(sha), "the ended stream still holds the upload claim"

        later = IngestStream(deps)
        await later.session.on_manifest([entry], ConflictPolicy.AUTO)
        assert [s.sha256 for s in later.sent] == [sha], "a later stream is asked for it"
        await later.session.close()

    try:
        asyncio.run(scenario())
    finally:
        deps.catalog.close()


def test_a_close_cancelled_at_once_still_parks_the_partial_and_releases_the_claim(
        tmp_path: Path) -> None:
    """The stream's cleanup is itself cancelled (the call ends twice over, as when the agent
    dies while the server cuts an idle stream): the partial is parked for a resume all the
    same, and the claim is released once that is done, never left held."""
    deps = real_ingest_deps(tmp_path)
    content = PHOTO * 4
    sha = sha_of(content)

    async def scenario() -> None:
        stream = await open_stream(deps, [content])
        await stream.session.on_chunks([chunk_of(content, 0, 1000)])
        closing = asyncio.create_task(stream.session.close())
        await asyncio.sleep(0)
        closing.cancel()
        await asyncio.gather(closing, return_exceptions=True)
        for _ in range(500):
            if not deps.claims.held(sha):
                break
            await asyncio.sleep(0.01)
        assert not deps.claims.held(sha), "the cancelled close left the claim held"

    try:
        asyncio.run(scenario())
        assert [p.name for p in deps.store.partial.iterdir()] == [f"{sha}.resume"]
        assert deps.store.partial_offset(sha) == 1000, "the parked bytes are kept for a resume"
    finally:
        deps.catalog.close()
