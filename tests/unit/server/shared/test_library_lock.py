"""The library lock, on both backends: holders of the same path on any server take turns (a
read-modify-write under it never loses an update); on PostgreSQL, holders of other paths do
not wait for each other, the whole-library hold waits for every path holder, overlapping
batches taken from two servers in opposite orders do not deadlock, and a dead server's paths
are free at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from photonic.server.pg_db import connect
from photonic.server.shared.library_lock import LibraryLock
from photonic.server.shared.pg_keys import WHOLE_LIBRARY, PathKey, path_key
from photonic.server.shared_state import SharedState, make_shared_state
from tests.support.daemons import wait_until
from tests.unit.server.shared.conftest import terminate_holder_of, waiting_for

ROUNDS = 40
PATH: PathKey = ("laptop", "photos", "2024/IMG_0001.CR3")
OTHER: PathKey = ("laptop", "photos", "2024/IMG_0002.CR3")


@pytest.fixture
def two_locks(backend: str | None) -> Iterator[tuple[LibraryLock, LibraryLock]]:
    """Two servers' locks (one lock for the in-process backend)."""
    states = [make_shared_state(backend)]
    if backend is not None:
        states.append(make_shared_state(backend))
    yield states[0].library_lock, states[-1].library_lock
    for state in states:
        _stop(state)


def _stop(state: SharedState) -> None:
    asyncio.run(state.stop())


def test_holders_of_one_path_on_two_servers_never_lose_an_update(
        two_locks: tuple[LibraryLock, LibraryLock]) -> None:
    """Four threads, two per server, each read-modify-write a counter under the path's lock
    (with a pause between the read and the write that invites a lost update): the counter
    ends at the number of increments. Batches name the path among others, in any order."""
    counter = {"n": 0}

    def worker(lock: LibraryLock, index: int) -> None:
        for i in range(ROUNDS):
            batch = [PATH, (f"a{index}", "w", f"p{i}")]
            with lock.hold(reversed(batch) if i % 2 else iter(batch)):
                seen = counter["n"]
                time.sleep(0.0005)
                counter["n"] = seen + 1

    threads = [threading.Thread(target=worker, args=(lock, i))
               for i, lock in enumerate([*two_locks, *two_locks])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert counter["n"] == 4 * ROUNDS


def test_whole_library_hold_is_exclusive_with_path_holders(
        two_locks: tuple[LibraryLock, LibraryLock]) -> None:
    """hold_all and path holders on either server never overlap."""
    inside: list[str] = []
    overlaps: list[list[str]] = []
    guard = threading.Lock()

    def enter(name: str) -> None:
        with guard:
            inside.append(name)
            if len(inside) > 1:
                overlaps.append(list(inside))

    def leave(name: str) -> None:
        with guard:
            inside.remove(name)

    def worker(lock: LibraryLock, name: str, whole: bool) -> None:
        for i in range(ROUNDS // 2):
            with lock.hold_all() if whole else lock.hold([(name, "w", f"p{i}")]):
                enter(name)
                time.sleep(0.0005)
                leave(name)

    a, b = two_locks
    threads = [threading.Thread(target=worker, args=(lock, name, whole))
               for lock, name, whole in ((a, "all-a", True), (b, "paths-b", False),
                                         (b, "all-b", True), (a, "paths-a", False))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    # Path holders of different paths may overlap; nothing may overlap a whole hold.
    assert [o for o in overlaps if any(n.startswith("all") for n in o)] == []


def test_other_paths_do_not_wait_but_the_same_path_does(pg_url: str) -> None:
    """A holds PATH: B takes OTHER at once, and waits in the database for PATH until A's
    hold ends."""
    a, b = make_shared_state(pg_url), make_shared_state(pg_url)
    try:
        with a.library_lock.hold([PATH]):
            with b.library_lock.hold([OTHER]):
                pass
            got = threading.Event()

            def take_path() -> None:
                with b.library_lock.hold([OTHER, PATH]):
                    got.set()

            taker = threading.Thread(target=take_path)
            taker.start()
            wait_until(lambda: waiting_for(pg_url, path_key(PATH)) == 1, 30, 0.02,
                       "B waits for the path A holds")
            assert not got.is_set()
        taker.join(30)
        assert got.is_set()
    finally:
        _stop(a)
        _stop(b)


def test_a_dead_servers_paths_are_free_at_once(pg_url: str) -> None:
    """A's session ends while it holds a path (its server SIGKILLed): B, waiting for the
    path, gets it without A ever letting go."""
    a, b = make_shared_state(pg_url), make_shared_state(pg_url)
    got = threading.Event()
    try:
        holding = a.library_lock.hold([PATH])
        holding.__enter__()

        def take_path() -> None:
            with b.library_lock.hold([PATH]):
                got.set()

        taker = threading.Thread(target=take_path)
        taker.start()
        wait_until(lambda: waiting_for(pg_url, path_key(PATH)) == 1, 30, 0.02,
                   "B waits for the path A holds")
        assert terminate_holder_of(pg_url, path_key(PATH)) == 1
        taker.join(30)
        assert got.is_set()
        holding.__exit__(None, None, None)  # A's release finds its session gone: no error
        with a.library_lock.hold([PATH]):  # and A opens a new one next time
            pass
        assert terminate_holder_of(pg_url, WHOLE_LIBRARY) == 0  # no shared key left held
    finally:
        _stop(a)
        _stop(b)


def test_a_server_that_outlives_its_lock_session_locks_on_a_new_one(pg_url: str) -> None:
    """A's lock session ends while A holds nothing (a database restart, a cut connection):
    A's next batch is locked on a new session, without an error, and is still exclusive."""
    a, b = make_shared_state(pg_url), make_shared_state(pg_url)
    try:
        with a.library_lock.hold([PATH]):
            pass
        with connect(pg_url) as conn:
            ended = conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM "
                "pg_stat_activity WHERE query LIKE '%%advisory_unlock_shared%%' "
                "AND pid <> pg_backend_pid()").fetchone()
        assert ended == (1,)
        with a.library_lock.hold([PATH]):
            got = threading.Event()
            taker = threading.Thread(target=lambda: _take(b.library_lock, got))
            taker.start()
            wait_until(lambda: waiting_for(pg_url, path_key(PATH)) == 1, 30, 0.02,
                       "B waits for the path A holds on its new session")
            assert not got.is_set()
        taker.join(30)
        assert got.is_set()
    finally:
        _stop(a)
        _stop(b)


def _take(lock: LibraryLock, got: threading.Event) -> None:
    with lock.hold([PATH]):
        got.set()
