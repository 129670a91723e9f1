"""Two uploads of the same job output at once (two crops of one photo, on one server or on two
sharing a store): the second waits for the first's claim instead of failing its job's try,
then reads and drops its bytes; the object is stored once and intact."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

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
