"""What only the PostgreSQL catalog promises, on a real throwaway PostgreSQL 15: two servers
(two PgCatalogs on one database) recording versions at once keep the dashboard's summaries
equal to a recount (increments under row locks, not read-modify-write); a path both record
at once is one location; migrations run once however many servers open the database; an
unreachable database is refused naming its host, never its password."""

from __future__ import annotations

import threading
from importlib import resources

import pytest

from photonic._configcatalog import CatalogConfig
from photonic.errors import Transient
from photonic.models import ExifSummary
from photonic.server.catalog import Catalog, NewVersion
from photonic.server.pg_db import connect
from photonic.server.storage.catalogs import open_catalog
from photonic.server.storage.pg_catalog import PgCatalog
from tests.support.catalogs import table_rows

SERVERS = 2
PATHS_PER_SERVER = 40
VERSIONS = 3


def _sha(n: int) -> str:
    return f"{n:064x}"


def _version(agent: str, rel: str, n: int, version: int) -> NewVersion:
    return NewVersion(agent, "photos", rel, _sha(n), 1000 + n, ExifSummary(), version,
                      f"{agent}/photos/{rel}.v{version}", make_head=True)


def test_two_servers_writing_at_once_keep_the_summaries_equal_to_a_recount(
        pg_url: str) -> None:
    """Each server records new paths and new head versions of them for the same agents, in
    batched transactions and single commits, all at once; the totals and the folder tree
    the commits maintained equal a recount of every head."""
    servers = [PgCatalog(pg_url) for _ in range(SERVERS)]
    errors: list[BaseException] = []
    start = threading.Barrier(SERVERS)

    def server(index: int, catalog: Catalog) -> None:
        try:
            start.wait()
            for i in range(PATHS_PER_SERVER):
                rel = f"s{index}/{i % 4}/p{i}.jpg"
                for agent in ("a", "b"):
                    with catalog.writing() as tx:
                        tx.commit_version(_version(agent, rel, index * 10_000 + i * 10, 1))
                    for v in range(2, VERSIONS + 1):
                        catalog.commit_version(
                            _version(agent, rel, index * 10_000 + i * 10 + v, v),
                            durable=v == VERSIONS)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=server, args=(i, c)) for i, c in enumerate(servers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        recount = servers[0].recounted_totals()
        assert recount["a"][0] == SERVERS * PATHS_PER_SERVER
        for agent in ("a", "b"):
            assert servers[1].agent_totals(agent) == recount[agent]
        folders = set(table_rows(servers[0], "SELECT agent_id, watch_name, parent, name "
                                             "FROM library_folders"))
        assert folders == {(a, "photos", p, n) for a in ("a", "b")
                           for s in range(SERVERS)
                           for p, n in [("", f"s{s}"), *((f"s{s}", str(k)) for k in range(4))]}
    finally:
        for c in servers:
            c.close()


def test_a_path_two_servers_create_at_once_is_one_location(pg_url: str) -> None:
    """Both insert the same new path in open transactions; the second waits on the first's
    row and then finds it (ON CONFLICT DO NOTHING, then the row): one location."""
    from photonic.server.storage.pg_catalog_writes import lock_location
    first, second = PgCatalog(pg_url), PgCatalog(pg_url)
    got: list[tuple[int, bool]] = []
    try:
        with first._db.tx() as c:
            got.append(lock_location(c, "a", "photos", "x/y.jpg", 1))
            waiter = threading.Thread(target=lambda: _lock_in(second, got))
            waiter.start()
            waiter.join(0.5)  # it waits for this transaction, whose row it conflicts with
        waiter.join()
        assert got[0] == (got[0][0], True)
        assert got[1] == (got[0][0], False)
        assert table_rows(first, "SELECT COUNT(*) FROM locations") == [(1,)]
    finally:
        first.close()
        second.close()


def _lock_in(catalog: PgCatalog, got: list[tuple[int, bool]]) -> None:
    from photonic.server.storage.pg_catalog_writes import lock_location
    with catalog._db.tx() as c:
        got.append(lock_location(c, "a", "photos", "x/y.jpg", 1))


def test_migrations_run_once_for_every_server_that_opens_the_database(pg_url: str) -> None:
    opened: list[PgCatalog] = []
    threads = [threading.Thread(target=lambda: opened.append(PgCatalog(pg_url)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(opened) == 4
        files = resources.files("photonic.server.storage.pg_catalog_migrations").iterdir()
        numbers = sorted(int(f.name[:3]) for f in files if f.name.endswith(".sql"))
        assert table_rows(opened[0], "SELECT version FROM schema_version WHERE package = "
                                     "'photonic.server.storage.pg_catalog_migrations' "
                                     "ORDER BY version") == [(n,) for n in numbers]
    finally:
        for c in opened:
            c.close()


def test_an_unreachable_database_names_its_host_and_never_its_password() -> None:
    url = "postgresql://photonic:s3cret-pass@127.0.0.1:1/photonic"
    with pytest.raises(Transient) as caught:
        open_catalog(CatalogConfig(url))
    message = str(caught.value)
    assert "127.0.0.1" in message and "unreachable" in message
    assert "s3cret-pass" not in message


def test_two_servers_crossing_each_others_rows_lose_one_transaction_as_transient(
        pg_url: str) -> None:
    """Each server's transaction holds one path's row and then wants the other's: PostgreSQL
    breaks the deadlock by rolling one back, which reaches the caller as Transient (tried
    again later), while the other commits."""
    from photonic.server.storage.pg_catalog_writes import lock_location
    servers = [PgCatalog(pg_url), PgCatalog(pg_url)]
    both_hold = threading.Barrier(2)
    outcomes: list[str] = []

    def server(catalog: PgCatalog, first: str, second: str) -> None:
        try:
            with catalog._db.tx() as c:
                lock_location(c, "a", "photos", first, 1)
                both_hold.wait()
                lock_location(c, "a", "photos", second, 1)
            outcomes.append("committed")
        except Transient as e:
            outcomes.append("transient" if "rolled back" in str(e) else str(e))

    try:
        for catalog in servers:  # both paths exist before the race
            with catalog._db.tx() as c:
                lock_location(c, "a", "photos", "x.jpg", 1)
                lock_location(c, "a", "photos", "y.jpg", 1)
        threads = [threading.Thread(target=server, args=(servers[0], "x.jpg", "y.jpg")),
                   threading.Thread(target=server, args=(servers[1], "y.jpg", "x.jpg"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["committed", "transient"]
    finally:
        for c in servers:
            c.close()


def test_a_database_that_commits_asynchronously_is_made_to_commit_durably(
        pg_url: str) -> None:
    """With synchronous_commit = off set on the database, the catalog's own session commits
    synchronously anyway (its commits acknowledge photos); writing() still turns it off for
    its own transaction only, until make_durable."""
    with connect(pg_url) as admin:
        database = admin.execute("SELECT current_database()").fetchone()
        assert database is not None
        admin.execute(f"ALTER DATABASE {database[0]} SET synchronous_commit TO off")
    catalog = PgCatalog(pg_url)
    try:
        with catalog._db.connection() as c:
            assert c.execute("SHOW synchronous_commit").fetchone() == ("on",)
        with catalog._db.tx(durable=False) as c:
            assert c.execute("SHOW synchronous_commit").fetchone() == ("off",)
        with catalog._db.connection() as c:
            assert c.execute("SHOW synchronous_commit").fetchone() == ("on",)
    finally:
        catalog.close()


def test_a_path_is_new_once_within_one_transaction_and_across_transactions(
        pg_url: str) -> None:
    """lock_location says `inserted` only for the statement that made the row: not for the
    same path again in the same (batched) transaction, nor in a later one."""
    from photonic.server.storage.pg_catalog_writes import lock_location
    catalog = PgCatalog(pg_url)
    try:
        with catalog._db.tx(pipelined=True) as c:
            first = lock_location(c, "a", "photos", "x/y.jpg", 1)
            again = lock_location(c, "a", "photos", "x/y.jpg", 2)
        with catalog._db.tx() as c:
            later = lock_location(c, "a", "photos", "x/y.jpg", 3)
        assert first[1] is True and again == (first[0], False) and later == (first[0], False)
        assert table_rows(catalog, "SELECT head_version FROM locations") == [(1,)]
    finally:
        catalog.close()
