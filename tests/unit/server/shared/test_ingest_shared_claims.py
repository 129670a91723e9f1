"""Ingest on two servers whose upload claims are shared through one PostgreSQL (each server
with its own store and catalog, as on this branch): the same new photo offered to both is
written by one stream at a time, the other told nothing until the first commits; and the
claim is released on every path a stream ends by (commit, refusal for a full disk, the stream
cut mid-upload), so the other server can take it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from photonic.errors import StorageFull
from photonic.models import Decision
from photonic.server.ingest_deps import IngestDeps, IngestLimits
from photonic.server.shared_state import SharedState, make_shared_state
from tests.support.ingest import IngestStream, chunk_of, open_stream, real_ingest_deps, sha_of

PHOTO = b"a new photo both laptops took " * 4000
WAIT_S = 30.0


async def _until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT_S / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


def _server(root: Path, state: SharedState) -> IngestDeps:
    deps = real_ingest_deps(root)
    deps.claims = state.claims
    return deps


def _run(tmp_path: Path, pg_url: str | None,
         scenario: Callable[[IngestDeps, IngestDeps], Awaitable[None]]) -> None:
    """Two servers' ingest; pg_url None: two stores sharing one process's claims."""
    async def main() -> None:
        states = [make_shared_state(pg_url)]
        if pg_url is not None:
            states.append(make_shared_state(pg_url))
        for s in states:
            await s.start()
        a, b = _server(tmp_path / "a", states[0]), _server(tmp_path / "b", states[-1])
        try:
            await scenario(a, b)
        finally:
            for s in states:
                await s.stop()
            a.catalog.close()
            b.catalog.close()

    asyncio.run(main())


def test_the_same_new_photo_on_two_servers_is_written_by_one_stream_at_a_time(
        tmp_path: Path, pg_url: str) -> None:
    """A is asked for the photo (SEND); B, offered it meanwhile, is answered nothing while
    A's stream holds the claim; once A commits (claim released), B decides and is asked for
    it in turn (its own store does not hold it) and commits it too; no claim is left: A sees
    B's release and takes the claim. (A release never blocks: B's row goes on B's database
    thread after its stream closed, so A waits for it as a server does, wait_released, rather
    than claiming at once and racing B's thread.)"""
    sha = sha_of(PHOTO)

    async def scenario(a: IngestDeps, b: IngestDeps) -> None:
        on_a = await open_stream(a, [PHOTO])
        on_b = IngestStream(b, "desktop")
        await on_b.offer([PHOTO])
        assert on_b.decisions() == [], "B waits for A's claim"
        await on_a.session.on_chunks([chunk_of(PHOTO, 0, len(PHOTO))])
        await _until(lambda: on_a.committed() == {sha}, "A committed")
        await _until(lambda: bool(on_b.decisions()), "B decided")
        assert [d.action for d in on_b.decisions()] == [Decision.SEND]
        await on_b.session.on_chunks([chunk_of(PHOTO, 0, len(PHOTO))])
        await _until(lambda: on_b.committed() == {sha}, "B committed")
        for stream in (on_a, on_b):
            await stream.session.close()
        assert not a.claims.held(sha) and not b.claims.held(sha)
        await asyncio.wait_for(a.claims.wait_released(sha), WAIT_S)
        assert await a.claims.try_claim(sha)
        a.claims.release(sha)

    _run(tmp_path, pg_url, scenario)


def test_a_refused_upload_releases_its_claim_for_the_other_server(
        tmp_path: Path, pg_url: str) -> None:
    """A's disk is full: the offer is refused (StorageFull) and the claim A took for it is
    released, so B can claim the content."""
    sha = sha_of(PHOTO)

    async def scenario(a: IngestDeps, b: IngestDeps) -> None:
        a.limits = IngestLimits(10**12, 2**62, True)
        on_a = IngestStream(a)
        with pytest.raises(StorageFull):
            await on_a.offer([PHOTO])
        await on_a.session.close()
        await asyncio.wait_for(b.claims.wait_released(sha), WAIT_S)
        assert await b.claims.try_claim(sha)
        b.claims.release(sha)

    _run(tmp_path, pg_url, scenario)


def test_a_stream_cut_mid_upload_releases_its_claim_and_the_other_server_resumes(
        tmp_path: Path, pg_url: str) -> None:
    """A's agent goes away after part of the photo: its stream ends, its claim is released,
    and B's waiting stream is asked for the photo."""
    sha = sha_of(PHOTO)

    async def scenario(a: IngestDeps, b: IngestDeps) -> None:
        on_a = await open_stream(a, [PHOTO])
        await on_a.session.on_chunks([chunk_of(PHOTO, 0, 1000)])
        on_b = IngestStream(b, "desktop")
        await on_b.offer([PHOTO])
        assert on_b.decisions() == []
        await on_a.session.close()
        await _until(lambda: bool(on_b.decisions()), "B decided")
        assert [d.action for d in on_b.decisions()] == [Decision.SEND]
        assert not a.claims.held(sha)
        await on_b.session.close()

    _run(tmp_path, pg_url, scenario)


def test_a_failure_deciding_after_the_other_claim_breaks_the_waiting_stream(
        tmp_path: Path, backend: str | None) -> None:
    """B waits for A's claim; when A lets go, B's disk is full: B's stream is told (broken
    with StorageFull, as a failed commit is), not left waiting for an answer that never
    comes."""
    async def scenario(a: IngestDeps, b: IngestDeps) -> None:
        on_a = await open_stream(a, [PHOTO])
        on_b = IngestStream(b, "desktop")
        await on_b.offer([PHOTO])
        assert on_b.decisions() == []
        b.limits = IngestLimits(10**12, 2**62, True)
        await on_a.session.close()
        await asyncio.wait_for(on_b.broken_event.wait(), WAIT_S)
        assert [type(e) for e in on_b.broken] == [StorageFull]
        await on_b.session.close()
        assert not b.claims.held(sha_of(PHOTO))

    _run(tmp_path, backend, scenario)
