"""Client certificates as web credentials, judged by the gRPC side's rules: the admin scope
admits, any other identity, a revoked certificate or the CA's own is refused with a reason;
the HTTPS context asks for an optional certificate signed by the photonic CA."""

from __future__ import annotations

import ssl
from pathlib import Path

from photonic.models import Scope
from photonic.server.auth import RevocationList
from photonic.web.cert_access import CertificateGate
from photonic.web.site import web_ssl_context
from tests.support.pki import TestPki

SCOPES = {"admin": frozenset({Scope.ADMIN})}


async def _no_audit(*_row: str) -> None:
    return None


def _der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def _gate(revoked: Path | None = None) -> CertificateGate:
    return CertificateGate(lambda cn: SCOPES.get(cn, frozenset({Scope.SYNC})),
                           RevocationList(revoked), _no_audit)


def test_the_admin_certificate_is_admitted_and_others_are_refused(
        pki: TestPki, tmp_path: Path) -> None:
    """admin (admin scope) is admitted as cert:admin; laptop (sync) is refused for lacking
    the admin scope; the CA's own certificate and a revoked admin certificate are refused."""
    gate = _gate()
    admin = gate.judge(_der(pki.agent_cert("admin")))
    assert admin.admitted and admin.actor == "cert:admin"
    laptop = gate.judge(_der(pki.agent_cert("laptop")))
    assert not laptop.admitted and "lacks the 'admin' scope" in laptop.refusal
    ca = gate.judge(_der(pki.ca))
    assert not ca.admitted and "CA certificate" in ca.refusal and ca.actor == "cert:?"
    revocations = tmp_path / "revoked.txt"
    revocations.write_text("admin\n")
    revoked = _gate(revocations).judge(_der(pki.agent_cert("admin")))
    assert not revoked.admitted and "revoked" in revoked.refusal


def test_csrf_tokens_are_per_identity(pki: TestPki) -> None:
    """A certificate's CSRF token matches only its identity, and only in this process."""
    gate = _gate()
    token = gate.csrf_token("admin")
    assert gate.csrf_matches("admin", token)
    assert not gate.csrf_matches("laptop", token) and not gate.csrf_matches("admin", "")
    assert not _gate().csrf_matches("admin", token)  # another process, another key


def test_https_asks_for_an_optional_certificate_of_the_ca(pki: TestPki) -> None:
    """With the CA the HTTPS context asks for a client certificate but does not require it."""
    context = web_ssl_context("0.0.0.0", pki.server_cert, pki.server_key, pki.ca)
    assert context is not None and context.verify_mode == ssl.CERT_OPTIONAL
    plain = web_ssl_context("0.0.0.0", pki.server_cert, pki.server_key)
    assert plain is not None and plain.verify_mode == ssl.CERT_NONE
