"""A throwaway PostgreSQL cluster for the tests: initdb into a temporary folder, started with
pg_ctl on a free port whose only listener is a unix socket inside that folder (no TCP, trust
for those local connections only, every other setting PostgreSQL's default, fsync included),
stopped and deleted at the end of the session. Each test gets a fresh database made from an
empty template. initdb refuses to run as root: as root, the cluster runs as the `postgres`
user (or `nobody`), owning the folder."""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.daemons import free_port

SUPERUSER = "photonic"
TEMPLATE = "photonic_template"
INSTALL_HINT = "install Debian's postgresql package (make test-deps)"


def pg_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, else Debian's /usr/lib/postgresql/<version>/bin
    (which Debian does not put on PATH), the newest version first."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)],
                      reverse=True)
    return versions[0].parent if versions else None


def _run_as() -> tuple[list[str], str | None]:
    """The command prefix that drops root (initdb refuses root), and the user it runs as."""
    if os.geteuid() != 0:
        return [], None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"], user
    raise RuntimeError("running as root and neither a postgres nor a nobody user exists")


RETIRED_KEPT = 48
"""How many databases tests are done with may wait, undropped, for the next batch of drops."""


@dataclass
class PgCluster:
    root: Path
    bin_dir: Path
    port: int
    prefix: Sequence[str]
    retired: list[str] = field(default_factory=list)

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def url(self, database: str) -> str:
        return (f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"
                f"&port={self.port}")

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix, str(self.bin_dir / "pg_ctl"), "-D",
                               str(self.root / "data"), *args], capture_output=True, text=True,
                              timeout=120, check=False)

    def start(self, *settings: str) -> None:
        """settings: extra `name=value` server settings for this start only (the bench seeds
        its cached catalogs with fsync off; nothing is written to postgresql.conf)."""
        options = f"-k {self.socket_dir} -p {self.port} -c listen_addresses=''"
        options += "".join(f" -c {setting}" for setting in settings)
        done = self._pg_ctl("-l", str(self.root / "postgres.log"), "-o", options, "-w",
                            "start")
        if done.returncode != 0:
            log = (self.root / "postgres.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"pg_ctl start failed: {done.stderr}\n{log}")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")

    def retire(self, database: str) -> None:
        """A test is done with database: its sessions are ended now, and it is dropped later,
        with others once RETIRED_KEPT wait (or with the whole cluster at the end). Each DROP
        DATABASE forces a checkpoint, about a second on a busy disk: dropping each test's
        databases at its end cost a hypothesis test that makes one per example 77 s."""
        self.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     f"WHERE datname = '{database}' AND pid <> pg_backend_pid()")
        self.retired.append(database)
        if len(self.retired) > RETIRED_KEPT:
            while self.retired:
                self.execute(f"DROP DATABASE {self.retired.pop()} WITH (FORCE)")

    def execute(self, statement: str, database: str = "postgres") -> None:
        """One statement in autocommit (CREATE/DROP DATABASE cannot run in a transaction)."""
        import psycopg
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(statement.encode())


def start_cluster() -> PgCluster:
    cluster = init_cluster(Path(tempfile.mkdtemp(prefix="photonic-pg-")))
    cluster.start()
    cluster.execute(f"CREATE DATABASE {TEMPLATE} IS_TEMPLATE true")
    return cluster


def cluster_at(root: Path) -> PgCluster:
    """A cluster whose data folder is (or will be) root/data, its socket in root/sock, on a
    free port; root and root/sock are made and given to the user the cluster runs as."""
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError(f"no initdb/pg_ctl found; {INSTALL_HINT}")
    prefix, user = _run_as()
    (root / "sock").mkdir(parents=True, exist_ok=True)
    if user is not None:
        for path in (root, root / "sock"):
            shutil.chown(path, user)
    return PgCluster(root, bin_dir, free_port(), prefix)


def init_cluster(root: Path) -> PgCluster:
    """initdb into root/data (not started): the tests' settings, which the bench's cached
    catalogs share."""
    cluster = cluster_at(root)
    done = subprocess.run(
        [*cluster.prefix, str(cluster.bin_dir / "initdb"), "-D", str(root / "data"), "-U",
         SUPERUSER,
         "--auth-local=trust", "--auth-host=reject", "-E", "UTF8", "--locale=C"],
        capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {done.stderr[-3000:]}")
    return cluster


@pytest.fixture(scope="session")
def pg_cluster() -> PgCluster:
    """The session's PostgreSQL: this test process's own cluster (process_cluster), the one
    the servers of a PHOTONIC_TEST_BACKEND run use too; a test that needs it is skipped,
    saying why, only where no PostgreSQL is installed or psycopg is missing."""
    pytest.importorskip("psycopg", reason="psycopg missing: pip install -e '.[dev]'")
    try:
        return process_cluster()
    except FileNotFoundError as e:
        pytest.skip(str(e))


_numbers = itertools.count(1)
_process_cluster: PgCluster | None = None


def process_cluster() -> PgCluster:
    """This test process's own cluster, started at the first call and removed when the
    process exits: one per process (per pytest -n worker), whether fixtures or helpers that
    are no fixtures (daemons.py's backend switch) ask for it."""
    global _process_cluster
    if _process_cluster is None:
        _process_cluster = start_cluster()
        atexit.register(remove_process_cluster)
    return _process_cluster


def remove_process_cluster() -> None:
    """Stops and deletes this process's cluster, if it has one (the end of the session calls
    it: a pytest -n worker may end without running atexit)."""
    global _process_cluster
    cluster, _process_cluster = _process_cluster, None
    if cluster is not None:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


def process_database_url() -> str:
    """A fresh database on this test process's cluster: for helpers that are no fixtures
    (daemons.py's PHOTONIC_TEST_BACKEND=postgresql or scaleout runs every server's catalog on
    PostgreSQL)."""
    cluster = process_cluster()
    name = f"server_{os.getpid()}_{next(_numbers)}"
    cluster.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return cluster.url(name)


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """The URL of a fresh, empty database of its own, retired after the test."""
    name = f"test_{os.getpid()}_{next(_numbers)}"
    pg_cluster.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield pg_cluster.url(name)
    pg_cluster.retire(name)
