"""Session fixtures shared by every test: one PKI (CA, server, agents, a rogue CA, an expired
certificate), built once with real keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# The chaos summary, added up over every worker of pytest -n (imported: pytest registers them).
from tests.chaos.summary import (  # noqa: F401
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_testnodedown,
)
from tests.support.backend import skip_local_only

# The catalog under test on SQLite and on PostgreSQL (a parametrised fixture).
from tests.support.catalogs import catalogs  # noqa: F401
from tests.support.daemons import Daemon, ServerHandle, start_server
from tests.support.pki import TestPki, make_test_pki

# A throwaway PostgreSQL cluster (session) and a fresh database per test that asks for one.
from tests.support.postgres import pg_cluster, pg_url  # noqa: F401

AGENTS = ("laptop", "desktop", "archive", "admin", "worker", "intruder")

# No property test has a time limit per example (hypothesis' default is 200 ms): how long an
# example takes on a machine running several tests at once (make test runs them in parallel) is
# no property of photonic, and tests make no timing assertions.
settings.register_profile("photonic", deadline=None)
settings.load_profile("photonic")


def pytest_unconfigure(config: pytest.Config) -> None:
    """This process's PostgreSQL cluster and moto server, if it started them, go now."""
    from tests.support.backend import stop_process_s3
    from tests.support.postgres import remove_process_cluster
    remove_process_cluster()
    stop_process_s3()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under PHOTONIC_TEST_BACKEND=scaleout, a test marked local_objects is skipped with its
    reason (tests/support/backend.py)."""
    skip_local_only(item)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"), AGENTS)


@pytest.fixture
def server(tmp_path: Path, pki: TestPki) -> Iterator[ServerHandle]:
    """A running server with its own storage, stopped (or killed) at the end of the test."""
    handle = start_server(tmp_path / "server", pki)
    yield handle
    _stop(handle.daemon)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Register daemons here to have them stopped at the end of the test, whatever happens."""
    started: list[Daemon] = []
    yield started
    for d in started:
        _stop(d)


def _stop(daemon: Daemon) -> None:
    if daemon.running:
        try:
            daemon.terminate(10)
        except AssertionError:
            daemon.kill()
