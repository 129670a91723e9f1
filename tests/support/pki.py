"""A throwaway PKI for tests: a CA, a server, agents, a rogue CA and an expired agent cert."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from photonic.pki import init_pki, issue_agent_cert
from photonic.tls import utc_now

EXPIRED_AGENT_ID = "expired-agent"
ROGUE_AGENT_ID = "rogue-agent"


@dataclass(frozen=True)
class TestPki:
    """Paths of every certificate and key made by make_test_pki."""

    __test__: ClassVar[bool] = False  # a helper, not a pytest test class

    pki_dir: Path
    rogue_dir: Path
    agents: tuple[str, ...]
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    rogue_cert: Path
    rogue_key: Path
    rogue_ca: Path
    expired_cert: Path
    expired_key: Path

    def agent_cert(self, agent_id: str) -> Path:
        return self._agent_file(agent_id, "crt")

    def agent_key(self, agent_id: str) -> Path:
        return self._agent_file(agent_id, "key")

    def _agent_file(self, agent_id: str, suffix: str) -> Path:
        if agent_id not in self.agents:
            raise KeyError(f"no test certificate for agent {agent_id!r}; made: {self.agents}")
        return self.pki_dir / f"{agent_id}.{suffix}"


def make_test_pki(root: Path, agents: Sequence[str]) -> TestPki:
    """Build root/pki (CA, server, agents, expired agent) and root/rogue (another CA).

    The rogue agent certificate carries the CN of the first legitimate agent (or
    "rogue-agent" when there are none), so a test can prove the CN alone grants nothing.
    """
    pki_dir, rogue_dir = root / "pki", root / "rogue"
    paths = init_pki(pki_dir)
    for agent_id in agents:
        issue_agent_cert(pki_dir, agent_id)
    now = utc_now()
    expired_cert, expired_key = issue_agent_cert(
        pki_dir,
        EXPIRED_AGENT_ID,
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )
    rogue_paths = init_pki(rogue_dir)
    rogue_cert, rogue_key = issue_agent_cert(rogue_dir, agents[0] if agents else ROGUE_AGENT_ID)
    return TestPki(
        pki_dir=pki_dir,
        rogue_dir=rogue_dir,
        agents=tuple(agents),
        ca=paths.ca_cert,
        ca_key=paths.ca_key,
        server_cert=paths.server_cert,
        server_key=paths.server_key,
        rogue_cert=rogue_cert,
        rogue_key=rogue_key,
        rogue_ca=rogue_paths.ca_cert,
        expired_cert=expired_cert,
        expired_key=expired_key,
    )


def server_identity(pki: TestPki, name: str) -> tuple[Path, Path]:
    """(cert, key) of a server-role certificate named name (`photonic certs issue NAME --role
    server`: serverAuth and clientAuth), made on first use in the session's PKI: a primary
    serves with it and dials its archive nodes with it."""
    cert, key = pki.pki_dir / f"{name}.crt", pki.pki_dir / f"{name}.key"
    if not cert.exists():
        issue_agent_cert(pki.pki_dir, name, server_role=True)
    return cert, key
