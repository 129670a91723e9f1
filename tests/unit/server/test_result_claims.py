"""Two uploads of the same job output at once (two crops of one photo, on one server or on two
sharing a store): the second waits for the first's claim instead of failing its job's try,
then reads and drops its bytes; the object is stored once and intact."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from photonic.server.catalog import SqliteCatalog
from photonic.server.jobs.results import ResultHeader, ResultStore
from photonic.server.library import Library
from photonic.server.shared.claims import LocalUploadClaims
from photonic.server.storage.local import LocalBlobStore
from photonic.server.store import ContentStore


def test_a_second_upload_of_the_same_output_waits_for_the_first(tmp_path: Path) -> None:
    content = b"crop" * 100_000
    sha = hashlib.sha256(content).hexdigest()
    store = ContentStore(tmp_path)
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    results = ResultStore(LocalBlobStore(store), Library(store, catalog), LocalUploadClaims(),
                          10**9)
    first_half_in = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_rest() -> AsyncIterator[tuple[int, bytes]]:
        first_half_in.set()
        await go_on.wait()
        yield len(content) // 2, content[len(content) // 2:]

    async def fast_rest() -> AsyncIterator[tuple[int, bytes]]:
        yield len(content) // 2, content[len(content) // 2:]

    async def go() -> None:
        head = content[:len(content) // 2]
        first = asyncio.create_task(results.receive(
            ResultHeader("j1", 1, sha, len(content), "a.png"), head, 0, slow_rest()))
        await first_half_in.wait()
        second = asyncio.create_task(results.receive(
            ResultHeader("j2", 1, sha, len(content), "a.png"), head, 0, fast_rest()))
        await asyncio.sleep(0.2)
        assert not second.done(), "the second upload did not wait for the first's claim"
        go_on.set()
        await asyncio.gather(first, second)

    asyncio.run(go())
    assert store.check_object(sha).intact
    assert not list((tmp_path / "partial").glob("*"))
    catalog.close()


def test_an_upload_cut_while_its_partial_opens_leaves_no_partial(tmp_path: Path) -> None:
    """The worker vanishes (the call is cancelled) while a thread opens the output's partial:
    the thread opens it all the same, and it is dropped once that thread is done, before the
    claim is released; the same output then uploads again (found by CI under load, where the
    cut landed in that window and left the partial behind for good)."""
    content = b"crop" * 100_000
    sha = hashlib.sha256(content).hexdigest()
    store = ContentStore(tmp_path)
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    blobs = LocalBlobStore(store)
    claims = LocalUploadClaims()
    results = ResultStore(blobs, Library(store, catalog), claims, 10**9)
    opening, let_open = threading.Event(), threading.Event()
    real_partial = blobs.partial

    def slow_partial(*args: Any, **kwargs: Any) -> Any:
        opening.set()
        let_open.wait(10)
        return real_partial(*args, **kwargs)

    blobs.partial = slow_partial  # type: ignore[method-assign]
    header = ResultHeader("j1", 1, sha, len(content), "a.png")

    async def no_more() -> AsyncIterator[tuple[int, bytes]]:
        return
        yield

    async def go() -> None:
        cut = asyncio.create_task(results.receive(header, content, 0, no_more()))
        await asyncio.to_thread(opening.wait, 10)
        cut.cancel()
        await asyncio.sleep(0.1)
        assert not await claims.try_claim(sha), "released while the thread still opened"
        let_open.set()
        with contextlib.suppress(asyncio.CancelledError):
            await cut
        assert not list((tmp_path / "partial").glob("*.part*")), "the partial was left"
        blobs.partial = real_partial  # type: ignore[method-assign]
        await results.receive(header, content, 0, no_more())

    asyncio.run(go())
    assert store.check_object(sha).intact
    catalog.close()
